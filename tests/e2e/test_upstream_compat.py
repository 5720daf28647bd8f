"""Worker files and payloads written for the Go program, through a real `mecha serve`
(issue 20): whole-valued floats in a policy and a worker file, a generic source's
numbers, GitLab notes without ``noteable_type``, a GitLab issue hook without
``object_attributes``, and template braces in a pull request's text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mecha.forges.signing import gitlab_headers
from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.instant_worker import InstantWorker, Received
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import endpoint_worker, wait_task
from tests.e2e.serving import (
    GITLAB_TOKEN,
    SOURCE_SECRET,
    make_home,
    mecha_cli,
    post_github,
    pr_payload,
    settled,
)
from tests.e2e.writing import (
    BASE,
    FAST_WRITES,
    GITHUB_TOKEN,
    HEAD,
    body,
    details,
    forge_writes,
    writes_settled,
)

CONFIG = FAST_WRITES + "sources:\n  alerts: {delivery_header: X-Alert-Id}\n"
#: each worker takes one kind of event and says in its prompt which one it rendered
WORKERS = {
    "counter": """  - source: alerts
    on: [alert.fired]
    filter: {count: "5"}
    prompt: "count={{.count}} ratio={{.ratio}} big={{.big}} whole_big={{.whole_big}}"
""",
    "notes": """  - source: gitlab
    on: [note]
    prompt: "note on {{.noteable_type}} {{.number}}: {{.title}}"
""",
    "issues": """  - source: gitlab
    on: [issue, issue.*]
    prompt: "review issue {{.number}}"
""",
    "bodies": """  - source: github
    on: [pull_request.opened]
    prompt: "Body: {{.body}}"
""",
}
BRACES = "{{range $k, $v := .}}{{$k}}={{$v}} {{end}} and {% for x in y %}{{ x }}{% endfor %}"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServeProcess, InstantWorker]]:
    home = make_home(tmp_path_factory.mktemp("compat"), config=CONFIG)
    with InstantWorker() as worker:
        for name, rules in WORKERS.items():
            endpoint_worker(home, name, worker.url, rules=rules)
        with ServeProcess(home) as server:
            yield server, worker


def prompt_of(worker: InstantWorker, task_id: str) -> str:
    [received] = [r for r in worker.requests if r.id == task_id]
    return received.prompt


def only_task(url: str, event_id: str, *, states: tuple[str, ...] = ("completed",)) -> Any:
    [task] = wait_task(url, event_id, states=states)
    return task


def post_alert(url: str, payload: dict[str, Any]) -> str:
    data = json.dumps(payload).encode()
    digest = hmac.new(SOURCE_SECRET.encode(), data, hashlib.sha256).hexdigest()
    headers = {
        "X-Event-Type": "alert.fired", "X-Alert-Id": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }  # fmt: skip
    answer = httpx.post(f"{url}/webhook/alerts", content=data, headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def post_gitlab(url: str, event: str, payload: dict[str, Any]) -> str:
    headers = gitlab_headers(token=GITLAB_TOKEN, event=event, delivery_id=str(uuid.uuid4()))
    answer = httpx.post(
        f"{url}/webhook/gitlab", content=json.dumps(payload).encode(), headers=headers, timeout=30
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


GITLAB_COMMON: dict[str, Any] = {
    "user": {"username": "root", "id": 1},
    "project": {"id": 3, "path_with_namespace": "group/app"},
}


def test_a_generic_sources_numbers_filter_and_print_as_upstream_printed_them(
    served: tuple[ServeProcess, InstantWorker],
) -> None:
    server, worker = served
    payload = {"count": 5.0, "ratio": 0.25, "big": 1234567.5, "whole_big": 1234567.0}
    event_id = post_alert(server.url, payload)
    task = only_task(server.url, event_id)
    assert prompt_of(worker, task["id"]) == (
        "count=5 ratio=0.25 big=1.2345675e+06 whole_big=1234567"
    )
    attrs = httpx.get(f"{server.url}/event/{event_id}", timeout=10).json()["attrs"]
    assert attrs["count"] == 5 and attrs["ratio"] == "0.25"
    # a count of 5.5 is not "5": the filter leaves it, as upstream's did
    other = settled(server.url, post_alert(server.url, {**payload, "count": 5.5}))
    assert (other["state"], other["tasks"]) == ("skipped", [])


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        ({"merge_request": {"iid": 9, "title": "Fix it", "target_project_id": 3}},
         "note on MergeRequest 9: Fix it"),
        ({"issue": {"iid": 4, "title": "It breaks"}}, "note on Issue 4: It breaks"),
    ],
)  # fmt: skip
def test_a_gitlab_note_without_noteable_type_reads_what_it_is_on(
    served: tuple[ServeProcess, InstantWorker], on: dict[str, Any], expected: str
) -> None:
    server, worker = served
    payload = {
        **GITLAB_COMMON,
        "object_kind": "note",
        "object_attributes": {"id": 77, "note": "please look", "author_id": 1},
        **on,
    }
    event_id = post_gitlab(server.url, "Note Hook", payload)
    assert prompt_of(worker, only_task(server.url, event_id)["id"]) == expected


def test_a_gitlab_issue_hook_without_object_attributes_has_no_number(
    served: tuple[ServeProcess, InstantWorker],
) -> None:
    server, worker = served
    before = len(worker.requests)
    event_id = post_gitlab(server.url, "Issue Hook", {**GITLAB_COMMON, "object_kind": "issue"})
    shown = settled(server.url, event_id)
    assert "number" not in shown["attrs"] and "title" not in shown["attrs"]
    # {{.number}} fails loudly, naming it, and nothing reviews "issue 0"
    assert (shown["state"], shown["tasks"]) == ("failed", [])
    failed = [e["detail"] for e in shown["timeline"] if e["step"] == "event failed"]
    assert failed == ["issues: prompt of rule 1 uses .number, which this event lacks"]
    assert len(worker.requests) == before


def test_template_braces_in_a_pull_requests_body_reach_the_model_verbatim(
    served: tuple[ServeProcess, InstantWorker],
) -> None:
    server, worker = served
    payload = json.loads(pr_payload(number=31))
    payload["pull_request"]["body"] = BRACES
    answer = post_github(server.url, json.dumps(payload).encode())
    assert answer.status_code == 202, answer.text
    task = only_task(server.url, str(answer.json()["id"]))
    received: Received = next(r for r in worker.requests if r.id == task["id"])
    assert received.prompt == "Body: " + BRACES  # data, never template code; not "{ {"


POLICY = """concurrency: 2.0
max_retries: 1.0
policy:
  comment: {allow: true, max_length: 120.0, max_per_hour: 10.0}
  labels: {allow: true, allowed: [bug], max: 1.0}
"""


def test_whole_valued_floats_in_a_worker_file_and_its_policy_work(tmp_path: Path) -> None:
    """``max_length: 120.0`` is 120: the policy is valid, and the comment is cut there."""
    result = {"comment": {"body": "x" * 300}, "labels": {"add": ["bug"]}}
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge, InstantWorker() as worker:
        home = make_home(tmp_path, config=FAST_WRITES, github_token=GITHUB_TOKEN)
        forge.add_pull("octo", "app", 7, base_sha=BASE, head_sha=HEAD)
        worker.set(result=result)
        endpoint_worker(home, "reviewer", worker.url, extra=POLICY)
        shown_config = mecha_cli(home, "config", "reviewer").stdout
        with ServeProcess(home, env={"GITHUB_API_URL": forge.github_url}) as server:
            answer = post_github(server.url, pr_payload())
            assert answer.status_code == 202, answer.text
            shown = writes_settled(server.url, str(answer.json()["id"]), count=2)
        written = forge_writes(forge)
    assert "concurrency: 2\n" in shown_config and "max_retries: 1\n" in shown_config
    policy = details(shown, "policy")
    assert not any("invalid" in line or "denied" in line for line in policy), policy
    text = body(written[0])["body"].split("\n\n<!-- mecha:")[0]
    assert len(text) <= 120 and text.endswith("... (truncated by policy)")
    assert body(written[1]) == {"labels": ["bug"]}


@pytest.mark.parametrize(
    ("lines", "code", "said"),
    [
        ("concurrency: 2.5\n", 1, "halves.yml:3:14: concurrency must be a whole number"),
        # the worker loads, and its invalid policy denies every action (as upstream)
        ("policy:\n  comment: {allow: true, max_length: 500.5}\n", 0,
         "warning: {path}:4:38: policy.comment.max_length: expected a whole number above 0, "
         "got a number 500.5; the policy is invalid and denies every action"),
    ],
)  # fmt: skip
def test_a_fraction_where_a_whole_number_is_asked_is_refused_at_its_place(
    tmp_path: Path, lines: str, code: int, said: str
) -> None:
    home = make_home(tmp_path)
    path = home / "halves.yml"
    path.write_text(
        f"name: halves\nendpoint: http://127.0.0.1:9\n{lines}"
        "events:\n  - source: github\n    on: [pull_request.opened]\n    prompt: hi\n",
        encoding="utf-8",
    )
    done = mecha_cli(home, "worker", "validate", str(path))
    shown = done.stdout + done.stderr
    assert done.returncode == code, shown
    assert said.format(path=path) in shown, shown
    assert "Traceback" not in shown
