"""Flow control in a real `mecha serve` against the forge emulator: a pull request gets
``opened`` and then five ``synchronize`` pushes while its first review runs, against a
``supersede`` worker that takes 2 s. Exactly two tasks reach the worker (the first head
and the last), the others end ``superseded`` naming their replacer, and the pull request
gets one sticky comment: the last review's."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.instant_worker import Behaviour, InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import endpoint_worker, wait_task
from tests.e2e.serving import make_home, post_github, pr_payload
from tests.e2e.writing import BASE, FAST_WRITES, GITHUB_TOKEN, forge_writes, writes_settled
from tests.metrics_check import value

RULES = """  - source: github
    on: [pull_request.opened, pull_request.synchronize]
    prompt: "review {{.head_sha}}"
"""
FLOW = """flow:
  key: "{{.repo}}#{{.number}}"
  supersede: true
policy:
  comment: {allow: true}
"""
HEADS = [c * 40 for c in "a12345"]
COMMENTS = "/github/repos/octo/app/issues/7/comments"


def push(head: str, action: str) -> bytes:
    payload = json.loads(pr_payload())
    payload["action"] = action
    payload["pull_request"]["head"]["sha"] = head
    return json.dumps(payload).encode()


def test_five_pushes_during_a_review_run_the_first_and_the_last_head_only(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path, config=FAST_WRITES, github_token=GITHUB_TOKEN)
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge, InstantWorker() as worker:
        forge.add_pull("octo", "app", 7, base_sha=BASE, head_sha=HEADS[-1])
        endpoint_worker(home, "reviewer", worker.url, rules=RULES, extra=FLOW)
        # every review takes 2 s; the first also waits until the five pushes are stored
        worker.set(delay=2.0, result={"comment": {"body": "review of the last head"}})
        first = {"comment": {"body": "review of the first head"}}
        worker.script([Behaviour(delay=2.0, gated=True, result=first)])
        with ServeProcess(home, env={"GITHUB_API_URL": forge.github_url}) as serve:
            events = [_send(serve.url, HEADS[0], "opened")]
            worker.wait_for(1)
            events += [_send(serve.url, head, "synchronize") for head in HEADS[1:]]
            worker.open_gate()
            shown = writes_settled(serve.url, events[-1])
            tasks = [wait_task(serve.url, e, states=("completed", "superseded"))[0]
                     for e in events]  # fmt: skip
            timeline = httpx.get(f"{serve.url}/event/{events[2]}", timeout=10).json()["timeline"]
            metrics = httpx.get(f"{serve.url}/metrics", timeout=10).text
        listed = httpx.get(
            f"{forge.github_url}/repos/octo/app/issues/7/comments",
            headers={"Authorization": f"Bearer {GITHUB_TOKEN}"},
        ).json()
        writes = [(r.method, r.path) for r in forge_writes(forge)]
    assert [r.prompt for r in worker.requests] == [f"review {HEADS[0]}", f"review {HEADS[-1]}"]
    assert [t["state"] for t in tasks] == ["superseded"] * 5 + ["completed"]
    last = tasks[-1]["id"]
    # each waiting push gave way to the next; the running first review to the newest
    assert [t["superseded_by"] for t in tasks[1:5]] == [t["id"] for t in tasks[2:]]
    assert tasks[0]["superseded_by"] == last
    assert all(t["flow_key"] == "octo/app#7" for t in tasks)
    assert len(listed) == 1 and listed[0]["body"].startswith("review of the last head")
    assert writes == [("POST", COMMENTS)]
    assert [w["state"] for w in shown["writes"]] == ["done"]
    assert any(e["step"] == "superseded" and f"superseded by task {tasks[3]['id']}" in e["detail"]
               for e in timeline)  # fmt: skip
    assert value(metrics, "mecha_tasks_superseded_total") == 5


def _send(url: str, head: str, action: str) -> str:
    answer = post_github(url, push(head, action))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])
