"""Incremental review against the forge emulator over real HTTP, GitHub and GitLab: the
``ForgeHydrator`` hydrates an event, then gives a worker the diff since the head it last
reviewed (``since_last``) as a pull request's head moves, is force-pushed, and is compared
past the cap."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from mecha.event import Delivery, Event, received
from mecha.forges.github.hydrate import DIFF_ACCEPT, GitHubAuth, GitHubClient
from mecha.forges.gitlab.hydrate import GitLabClient
from mecha.forges.hydrator import ForgeHydrator
from mecha.forges.incremental import NO_REVIEW
from mecha.testing.forge.api import FileChange, ForgeEmulator, Recorded

TOKEN = "ghp_" + "S" * 36
GL_TOKEN = "glpat-" + "S" * 20
BASE, H1, H2, H3 = "10" * 20, "a1" * 20, "b2" * 20, "c3" * 20
A = FileChange("a.py", "@@ -1 +1 @@\n-a\n+A\n", additions=1, deletions=1)
B = FileChange("b.py", "@@ -0,0 +1 @@\n+b\n", status="added", additions=1)
C = FileChange("c.py", "@@ -0,0 +1 @@\n+c\n", status="added", additions=1)
GH_COMPARE = "/github/repos/octo/hello/compare/"
GL_REPOSITORY = "/gitlab/api/v4/projects/12/repository/"


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    with ForgeEmulator(github_token=TOKEN, gitlab_token=GL_TOKEN) as emulator:
        emulator.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=H1, files=[A])
        emulator.add_merge_request("group/app", 7, base_sha=BASE, head_sha=H1, files=[A],
                                   project_id=12)  # fmt: skip
        yield emulator


def pushed(source: str, head: str) -> Event:
    """The pull (merge) request event for ``head``, as the webhook parsers make it."""
    attrs: dict[str, Any] = {"number": 7, "base_sha": BASE, "head_sha": head}
    if source == "github":
        attrs |= {"repo_owner": "octo", "repo_name": "hello"}
    else:
        attrs |= {"repo_owner": "group", "repo_name": "app", "project_id": 12}
    kind = "pull_request.synchronize" if source == "github" else "merge_request.update"
    subject = "octo/hello" if source == "github" else "group/app"
    sent = Delivery(source=source, type=kind, delivery_id=f"d-{head[:4]}", actor="mona",
                    subject=subject, attrs=attrs, raw=b"{}")  # fmt: skip
    return received(sent, now=0.0)


@dataclass
class Compared:
    """What the hydrator gave a worker, and the requests the comparison made."""

    attrs: dict[str, str]
    requests: list[Recorded]

    def __getitem__(self, key: str) -> str:
        return self.attrs[key]

    @property
    def paths(self) -> list[str]:
        return [r.path + (f"?{urlencode(r.pairs)}" if r.pairs else "") for r in self.requests]


def since_last(
    forge: ForgeEmulator, source: str, head: str, last: str, *, max_diff: int = 500_000
) -> Compared:
    """Hydrate the event for ``head``, then compare from ``last`` as the engine does."""

    async def run() -> Compared:
        async with httpx.AsyncClient() as http:
            hydrator = ForgeHydrator(
                github=GitHubClient(http, api_url=forge.github_url,
                                    auth=GitHubAuth.token(TOKEN), max_diff_bytes=max_diff),
                gitlab=GitLabClient(http, base_url=forge.gitlab_url, token=GL_TOKEN,
                                    max_diff_bytes=max_diff),
            )  # fmt: skip
            event = pushed(source, head)
            full = await hydrator.hydrate(event)
            assert full is not None and full.error == ""
            before = len(forge.requests)
            attrs = await hydrator.since_last(event, last, full)
            return Compared(attrs, forge.requests[before:])

    return asyncio.run(run())


# ------------------------------------------------------------------ GitHub


def test_github_first_review_is_the_full_diff_and_asks_nothing_more(forge: ForgeEmulator) -> None:
    seen = since_last(forge, "github", H1, "")
    assert seen["last_reviewed_sha"] == ""
    assert seen["diff_since_last_fallback"] == NO_REVIEW
    assert seen["diff_since_last"].startswith("diff --git a/a.py b/a.py\n")
    assert seen["files_since_last"] == "a.py"
    assert seen.paths == []


def test_github_second_push_gives_just_the_new_commits(forge: ForgeEmulator) -> None:
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=[B])
    seen = since_last(forge, "github", H2, H1)
    assert (seen["last_reviewed_sha"], seen["diff_since_last_fallback"]) == (H1, "")
    assert seen["diff_since_last"].startswith("diff --git a/b.py b/b.py\nnew file mode")
    assert "a.py" not in seen["diff_since_last"]
    assert (seen["files_since_last"], seen["diff_since_last_truncated"]) == ("b.py", "false")
    # pinned to the two SHAs, never a branch: the JSON (status), then the diff
    assert seen.paths == [f"{GH_COMPARE}{H1}...{H2}?per_page=1", f"{GH_COMPARE}{H1}...{H2}"]
    compare = seen.requests
    assert [r.headers["accept"] for r in compare] == ["application/vnd.github+json", DIFF_ACCEPT]
    assert {r.headers["authorization"] for r in compare} == {f"Bearer {TOKEN}"}


def test_github_force_push_falls_back_to_the_full_diff(forge: ForgeEmulator) -> None:
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=[B])
    forge.push_pull("octo", "hello", 7, head_sha=H3, files=[C], force=True)
    seen = since_last(forge, "github", H3, H2)
    assert seen["last_reviewed_sha"] == ""
    assert seen["diff_since_last_fallback"] == (
        f"force-push: the last reviewed commit {H2[:12]} is no longer an ancestor of the head "
        f"{H3[:12]} (GitHub compare: diverged)"
    )
    assert seen["diff_since_last"].startswith("diff --git a/c.py b/c.py\n")  # the full diff
    assert "b.py" not in seen["diff_since_last"]
    assert seen.paths == [f"{GH_COMPARE}{H2}...{H3}?per_page=1"]  # no diff fetched


def test_github_a_commit_gone_after_a_force_push_falls_back(forge: ForgeEmulator) -> None:
    forge.push_pull("octo", "hello", 7, head_sha=H3, files=[C], force=True, forget_old=True)
    seen = since_last(forge, "github", H3, H1)
    assert seen["diff_since_last_fallback"] == (
        f"force-push: the last reviewed commit {H1[:12]} is gone (GitHub answered 404)"
    )
    assert seen["last_reviewed_sha"] == "" and "c.py" in seen["diff_since_last"]


def test_github_the_new_changes_are_capped_as_the_diff_is(forge: ForgeEmulator) -> None:
    big = [FileChange(f"big{i}.py", "@@ -0,0 +1 @@\n+" + "x" * 400 + "\n", status="added")
           for i in range(5)]  # fmt: skip
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=big)
    seen = since_last(forge, "github", H2, H1, max_diff=1000)
    shown = seen["diff_since_last"]
    assert seen["diff_since_last_truncated"] == "true"
    assert shown.rstrip("\n").endswith("listed in files_omitted)")
    assert re.search(r"\(diff truncated at 1 KB: [34] of 5 files left out", shown)
    assert "+++ b/big0.py" in shown and "big4.py" not in shown  # whole files, in order
    assert len(shown.encode()) < 1000 + 200
    assert seen["files_since_last"].split("\n") == [f"big{i}.py" for i in range(5)]


def test_github_too_large_a_diff_is_put_together_from_the_files(forge: ForgeEmulator) -> None:
    many = [FileChange(f"f{i:03d}.py", "@@ -0,0 +1 @@\n+y\n", status="added") for i in range(301)]
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=many)
    seen = since_last(forge, "github", H2, H1)
    assert seen["diff_since_last_fallback"] == "" and seen["last_reviewed_sha"] == H1
    assert seen["diff_since_last"].count("diff --git ") == 300  # GitHub lists 300 files
    assert "+++ b/f000.py" in seen["diff_since_last"]


def test_github_a_failed_comparison_falls_back_and_says_why(forge: ForgeEmulator) -> None:
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=[B])
    forge.fail(r"/compare/" + H1, 502)
    seen = since_last(forge, "github", H2, H1)
    assert seen["diff_since_last_fallback"].startswith(
        f"the comparison failed: GitHub compare octo/hello {H1}...{H2}"
    )
    assert "502" in seen["diff_since_last_fallback"]
    assert TOKEN not in seen["diff_since_last_fallback"]
    assert "a.py" in seen["diff_since_last"]


def test_github_nothing_new_since_asks_nothing(forge: ForgeEmulator) -> None:
    seen = since_last(forge, "github", H1, H1)
    assert (seen["diff_since_last"], seen["last_reviewed_sha"]) == ("", H1)
    assert seen.paths == []


# ------------------------------------------------------------------ GitLab


def test_gitlab_first_review_is_the_full_diff(forge: ForgeEmulator) -> None:
    seen = since_last(forge, "gitlab", H1, "")
    assert (seen["last_reviewed_sha"], seen["diff_since_last_fallback"]) == ("", NO_REVIEW)
    assert "a/a.py" in seen["diff_since_last"] and seen.paths == []


def test_gitlab_second_push_gives_just_the_new_commits(forge: ForgeEmulator) -> None:
    forge.push_merge_request("group/app", 7, head_sha=H2, files=[B])
    seen = since_last(forge, "gitlab", H2, H1)
    assert (seen["last_reviewed_sha"], seen["diff_since_last_fallback"]) == (H1, "")
    assert seen["diff_since_last"].startswith("diff --git a/b.py b/b.py\nnew file mode")
    assert "a.py" not in seen["diff_since_last"] and seen["files_since_last"] == "b.py"
    requests = seen.requests
    by_path = {r.path: r for r in requests}
    assert set(by_path) == {GL_REPOSITORY + "merge_base", GL_REPOSITORY + "compare"}
    assert by_path[GL_REPOSITORY + "compare"].query == {"from": H1, "to": H2, "straight": "false"}
    [merge_base] = [r for r in requests if r.path.endswith("/merge_base")]
    assert [v for k, v in merge_base.pairs if k == "refs[]"] == [H1, H2]  # twice, in order
    assert {r.headers["private-token"] for r in requests} == {GL_TOKEN}


def test_gitlab_force_push_falls_back_to_the_full_diff(forge: ForgeEmulator) -> None:
    forge.push_merge_request("group/app", 7, head_sha=H2, files=[B])
    forge.push_merge_request("group/app", 7, head_sha=H3, files=[C], force=True)
    seen = since_last(forge, "gitlab", H3, H2)
    assert seen["last_reviewed_sha"] == ""
    assert seen["diff_since_last_fallback"] == (
        f"force-push: the last reviewed commit {H2[:12]} is no longer an ancestor of the head "
        f"{H3[:12]} (GitLab merge base: {BASE[:12]})"
    )
    assert "c.py" in seen["diff_since_last"] and "b.py" not in seen["diff_since_last"]


def test_gitlab_a_commit_gone_after_a_force_push_falls_back(forge: ForgeEmulator) -> None:
    forge.push_merge_request("group/app", 7, head_sha=H3, files=[C], force=True,
                             forget_old=True)  # fmt: skip
    seen = since_last(forge, "gitlab", H3, H1)
    assert seen["diff_since_last_fallback"] == (
        f"force-push: the last reviewed commit {H1[:12]} is gone (GitLab merge base: ref not found)"
    )


def test_gitlab_the_new_changes_are_capped(forge: ForgeEmulator) -> None:
    big = [FileChange(f"big{i}.py", "@@ -0,0 +1 @@\n+" + "x" * 400 + "\n", status="added")
           for i in range(5)]  # fmt: skip
    forge.push_merge_request("group/app", 7, head_sha=H2, files=big)
    seen = since_last(forge, "gitlab", H2, H1, max_diff=1000)
    assert seen["diff_since_last_truncated"] == "true"
    assert re.search(r"\(diff truncated at 1 KB: [34] of 5 files left out", seen["diff_since_last"])
    assert seen["last_reviewed_sha"] == H1
