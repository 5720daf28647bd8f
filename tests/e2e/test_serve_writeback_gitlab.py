"""Signed GitLab webhook → real `mecha serve` → instant worker → policy → the GitLab emulator.

Upstream never wired GitLab write-back (its events fell back to the GitHub client); here
an event is always written back to the forge it came from.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from mecha.testing.forge.api import ForgeEmulator, Recorded
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import endpoint_worker
from tests.e2e.serving import make_home
from tests.e2e.test_serve_samples import replay_gitlab
from tests.e2e.writing import (
    FAST_WRITES,
    GITHUB_TOKEN,
    GITLAB_TOKEN,
    body,
    details,
    forge_writes,
    writes_settled,
)

HEAD = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"  # the sample merge request's last commit
RULE = """  - source: gitlab
    on: [merge_request.*]
    prompt: "Review !{{.number}}"
"""
POLICY = """policy:
  comment: {allow: true}
  labels: {allow: true, blocked: [security]}
  status: {allow: true}
"""
API = "/gitlab/api/v4/projects/1"


def fields(request: Recorded) -> dict[str, str]:
    """A request's fields, JSON or form-encoded."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return {k: str(v) for k, v in body(request).items()}
    return dict(parse_qsl(request.body.decode()))


def test_a_merge_request_is_written_back_to_gitlab(tmp_path: Path) -> None:
    with ForgeEmulator(gitlab_token=GITLAB_TOKEN, github_token=GITHUB_TOKEN) as forge:
        forge.add_merge_request("gitlabhq/gitlab-test", 1, project_id=1, base_sha="0" * 40,
                                head_sha=HEAD)  # fmt: skip
        home = make_home(
            tmp_path, config=FAST_WRITES, github_token=GITHUB_TOKEN,
            gitlab_token=GITLAB_TOKEN, gitlab_url=forge.gitlab_url,
        )  # fmt: skip
        with InstantWorker() as worker:
            worker.set(result={
                "comment": {"body": "Two problems found."},
                "labels": {"add": ["needs-work", "security"], "remove": ["ready"]},
                "status": {"state": "error", "description": "review failed"},
            })  # fmt: skip
            endpoint_worker(home, "reviewer", worker.url, extra=POLICY, rules=RULE)
            env = {"GITHUB_API_URL": forge.github_url}
            with ServeProcess(home, env=env) as server:
                event_id = replay_gitlab(server.url, "merge_request.open").json()["id"]
                shown = writes_settled(server.url, event_id, count=3)
        written = forge_writes(forge)
    # GitHub was asked only which account Mecha writes as there (at start), nothing for
    # the merge request
    github = [(r.method, r.path) for r in forge.requests if r.path.startswith("/github")]
    assert set(github) <= {("GET", "/github/user")}, github
    assert [(r.method, r.path) for r in written] == [
        ("POST", f"{API}/merge_requests/1/notes"),
        ("PUT", f"{API}/merge_requests/1"),
        ("POST", f"{API}/statuses/{HEAD}"),
    ]
    assert fields(written[0])["body"].startswith(
        "Two problems found.\n\n<!-- mecha:worker=reviewer"
    )
    labels = fields(written[1])
    assert labels["add_labels"] == "needs-work" and labels["remove_labels"] == "ready"
    status = fields(written[2])
    assert status["state"] == "failed" and status["name"] == "mecha/reviewer"
    assert status["description"] == "review failed"
    assert 'denied: label add "security": blocked' in details(shown, "policy")
    assert {w["state"] for w in shown["writes"]} == {"done"}
