"""Recorded GitHub and GitLab deliveries replayed through a real `mecha serve`, and hydration
from the forge API emulator on the way to a task's prompt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mecha.forges.signing import hmac_sha256_hex
from mecha.testing.forge.api import FileChange, ForgeEmulator
from mecha.testing.serve_process import ServeProcess
from tests.e2e.serving import (
    GITHUB_SECRET,
    GITLAB_TOKEN,
    add_worker,
    make_home,
    settled,
)
from tests.sample_payloads import load_sample, sample_names

GH_TOKEN = "ghp_" + "t" * 36
GL_TOKEN = "glpat-" + "t" * 20
DIFF_RULE = """  - source: {source}
    on: [{on}]
    prompt: "Files:\\n{{{{.file_list}}}}\\nDiff:\\n{{{{.diff}}}}"
"""


def replay_github(url: str, name: str) -> httpx.Response:
    body, headers = load_sample("github", name)
    headers["x-hub-signature-256"] = "sha256=" + hmac_sha256_hex(GITHUB_SECRET, body)
    return httpx.post(f"{url}/webhook/github", content=body, headers=headers, timeout=30)


def replay_gitlab(url: str, name: str) -> httpx.Response:
    body, headers = load_sample("gitlab", name)
    headers["x-gitlab-token"] = GITLAB_TOKEN
    return httpx.post(f"{url}/webhook/gitlab", content=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ServeProcess(make_home(tmp_path_factory.mktemp("samples"))) as server:
        yield server.url


def test_the_documented_samples_are_shipped() -> None:
    """The samples the README and `mecha event send --sample` name."""
    assert sample_names("github") == [
        "issue_comment.created", "issues.opened", "ping", "pull_request.opened", "push",
    ]  # fmt: skip
    assert sample_names("gitlab") == ["issue.open", "merge_request.open", "note", "push"]


@pytest.mark.parametrize("name", [n for n in sample_names("github") if n != "ping"])
def test_github_samples_are_stored_with_their_name_as_type(url: str, name: str) -> None:
    """A sample's name is the event type the server gives it (what `--sample` promises)."""
    answer = replay_github(url, name)
    assert answer.status_code == 202, answer.text
    stored = httpx.get(f"{url}/event/{answer.json()['id']}").json()
    assert stored["type"] == name
    assert stored["raw"].encode() == load_sample("github", name)[0]
    assert replay_github(url, name).json()["status"] == "duplicate"


def test_the_github_ping_sample_is_answered(url: str) -> None:
    answer = replay_github(url, "ping")
    assert (answer.status_code, answer.json()["status"]) == (200, "pong")


@pytest.mark.parametrize("name", sample_names("gitlab"))
def test_gitlab_samples_are_stored_with_their_name_as_type(url: str, name: str) -> None:
    answer = replay_gitlab(url, name)
    assert answer.status_code == 202, answer.text
    assert answer.json()["type"] == name
    assert replay_gitlab(url, name).json()["status"] == "duplicate"


def _github_home(tmp_path: Path, forge: ForgeEmulator) -> tuple[Path, dict[str, str]]:
    home = make_home(tmp_path, github_token=GH_TOKEN)
    add_worker(home, "reviewer", DIFF_RULE.format(source="github", on="pull_request.opened"))
    return home, {"GITHUB_API_URL": forge.github_url}


def test_a_pull_request_prompt_gets_the_sha_pinned_diff_and_files(tmp_path: Path) -> None:
    with ForgeEmulator(github_token=GH_TOKEN) as forge:
        forge.add_pull(
            "Codertocat", "Hello-World", 2,
            base_sha="f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
            head_sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            files=[FileChange("README.md", "@@ -1 +1 @@\n-Hello\n+Hello World")],
        )  # fmt: skip
        home, env = _github_home(tmp_path, forge)
        with ServeProcess(home, env=env) as server:
            shown = settled(
                server.url, replay_github(server.url, "pull_request.opened").json()["id"]
            )
        paths = forge.paths("GET")
    assert shown["state"] == "matched", shown
    [task] = shown["tasks"]
    assert "Files:\nREADME.md\n" in task["prompt"]
    assert "+Hello World" in task["prompt"]
    assert task["context"]["diff"].startswith("diff --git a/README.md b/README.md")
    assert any(
        p.endswith(
            "/compare/f95f852bd8fca8fcc58a9a2d6c842781e32a215e...ec26c3e57ca3a959ca5aad62de7213c562f8c821"
        )
        for p in paths
    )


def test_a_failed_diff_fetch_is_recorded_on_the_event(tmp_path: Path) -> None:
    with ForgeEmulator(github_token=GH_TOKEN) as forge:
        forge.fail(r"/compare/", 500, times=None)
        forge.fail(r"/pulls/", 500, times=None)
        home, env = _github_home(tmp_path, forge)
        with ServeProcess(home, env=env) as server:
            shown = settled(
                server.url, replay_github(server.url, "pull_request.opened").json()["id"]
            )
    assert "500" in shown["error"]
    assert shown["attrs"]["diff_error"]
    assert GH_TOKEN not in str(shown)
    assert shown["state"] == "matched"  # the task still runs, with an empty diff


def test_a_merge_request_prompt_gets_gitlab_changes(tmp_path: Path) -> None:
    with ForgeEmulator(gitlab_token=GL_TOKEN) as forge:
        forge.add_merge_request(
            "gitlabhq/gitlab-test", 1, project_id=1, base_sha="0" * 40,
            head_sha="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            files=[FileChange("app.rb", "@@ -1 +1 @@\n-puts 1\n+puts 2")],
        )  # fmt: skip
        home = make_home(tmp_path, extra_secrets="")
        secrets = (
            (home / "secrets.yml")
            .read_text()
            .replace("gitlab:\n", f"gitlab:\n  token: {GL_TOKEN}\n  url: {forge.gitlab_url}\n")
        )
        (home / "secrets.yml").write_text(secrets)
        add_worker(home, "mr", DIFF_RULE.format(source="gitlab", on="merge_request.*"))
        with ServeProcess(home) as server:
            shown = settled(
                server.url, replay_gitlab(server.url, "merge_request.open").json()["id"]
            )
    assert shown["state"] == "matched", shown
    [task] = shown["tasks"]
    assert "Files:\napp.rb\n" in task["prompt"]
    assert "+puts 2" in task["prompt"]
