"""The database stays bounded in a real `mecha serve`: capped results, write records that
hold what was written, and old finished rows pruned in the background while webhooks keep
being stored."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from mecha.forges.bodies import MAX_COMMENT
from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, endpoint_worker, wait_task
from tests.e2e.serving import make_home, post_github, pr_payload
from tests.e2e.writing import (
    BASE,
    FAST_WRITES,
    GITHUB_TOKEN,
    HEAD,
    body,
    forge_writes,
    writes_settled,
)

MB = 1_000_000
#: every kind kept 2 seconds, pruned every second
SHORT_RETENTION = """retention:
  events: 2s
  tasks: 2s
  timeline: 2s
  writes: 2s
  interval: 1s
"""
ISSUE_RULE = """  - source: github
    on: [issues.opened]
    prompt: "Triage #{{.number}}"
"""


def query(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "mecha.db") as conn:
        return conn.execute(sql, args).fetchall()


def test_a_9_mb_answer_is_stored_capped_and_its_comment_recorded_as_written(
    tmp_path: Path,
) -> None:
    answer = {"output": "o" * 4 * MB, "comment": {"body": "word " * MB}}  # 4 MB + 5 MB
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge, InstantWorker() as worker:
        home = make_home(tmp_path, config=FAST_WRITES, github_token=GITHUB_TOKEN)
        forge.add_pull("octo", "app", 7, base_sha=BASE, head_sha=HEAD)
        worker.set(result=answer)
        endpoint_worker(home, "reviewer", worker.url, extra="policy:\n  comment: {allow: true}\n")
        with ServeProcess(home, env={"GITHUB_API_URL": forge.github_url}) as server:
            answered = post_github(server.url, pr_payload())
            assert answered.status_code == 202, answered.text
            shown = writes_settled(server.url, answered.json()["id"], timeout=120)
        [post] = forge_writes(forge)
    [(stored_bytes, stored)] = query(home, "SELECT length(CAST(result AS BLOB)), result FROM tasks")
    result = json.loads(stored)
    assert stored_bytes <= MB
    assert result["truncated"]["fields"] == {"output": 4 * MB, "comment.body": 5 * MB}
    assert result["truncated"]["bytes"] > 9 * MB
    assert "(cut by Mecha: 4,000,000 bytes in all" in result["output"]
    # the write record holds what GitHub was sent, not the 5 MB the worker answered
    sent = body(post)["body"]
    assert len(sent) == MAX_COMMENT
    [(spec,)] = query(home, "SELECT spec FROM writes")
    recorded = json.loads(spec)["body"]
    assert sent.startswith(recorded) and len(recorded) < MAX_COMMENT
    assert shown["writes"][0]["write"]["body"] == recorded
    assert shown["writes"][0]["state"] == "done"
    assert (home / "mecha.db").stat().st_size < 4 * MB  # today's code left over 20 MB


def test_old_rows_are_pruned_in_the_background_while_webhooks_keep_coming(
    tmp_path: Path,
) -> None:
    with InstantWorker() as worker:
        home = make_home(tmp_path, config=FAST + SHORT_RETENTION)
        endpoint_worker(home, "reviewer", worker.url)
        # a worker that never answers (offline): its task stays pending, so it is kept
        endpoint_worker(home, "triage", "http://127.0.0.1:9", online=False, rules=ISSUE_RULE)
        with ServeProcess(home) as server:
            issue = post_github(server.url, _issue(), event="issues")
            assert issue.status_code == 202, issue.text
            first = [_send(server.url, n) for n in range(1, 11)]
            for event_id in first:
                wait_task(server.url, event_id)
            sent: list[int] = []
            stop = threading.Event()
            feeder = threading.Thread(target=_keep_sending, args=(server.url, sent, stop))
            feeder.start()
            try:
                gone = _wait_until_gone(home, first, timeout=120)
            finally:
                stop.set()
                feeder.join(60)
            log = server.log()
        kept_ids = {row[0] for row in query(home, "SELECT id FROM events")}
    assert gone, f"the first events were not pruned:\n{log}"
    assert sent and all(code == 202 for code in sent)  # every webhook was stored meanwhile
    assert issue.json()["id"] in kept_ids  # its task is still pending: old, yet kept
    [(state,)] = query(home, "SELECT state FROM tasks WHERE worker = 'triage'")
    assert state == "pending"
    assert query(home, "SELECT count(*) FROM timeline WHERE task_id IN "
                 "(SELECT id FROM tasks WHERE worker = 'triage')") != [(0,)]  # fmt: skip
    assert "pruned " in log and "events" in log


def _issue() -> bytes:
    payload = {
        "action": "opened", "issue": {"number": 3, "title": "Broken"},
        "repository": {"full_name": "octo/app", "name": "app", "owner": {"login": "octo"}},
        "sender": {"login": "mona"},
    }  # fmt: skip
    return json.dumps(payload).encode()


def _send(url: str, number: int) -> str:
    answered = post_github(url, pr_payload(number=number))
    assert answered.status_code == 202, answered.text
    return str(answered.json()["id"])


def _keep_sending(url: str, codes: list[int], stop: threading.Event) -> None:
    number = 100
    while not stop.is_set():
        codes.append(post_github(url, pr_payload(number=number)).status_code)
        number += 1
        time.sleep(0.02)


def _wait_until_gone(home: Path, event_ids: list[str], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    marks = ", ".join("?" for _ in event_ids)
    while time.monotonic() < deadline:
        [(left,)] = query(home, f"SELECT count(*) FROM events WHERE id IN ({marks})", *event_ids)  # noqa: S608
        if left == 0:
            return True
        time.sleep(0.2)
    return False
