"""What a real `mecha serve` logs while a webhook goes through to its write-back:
``MECHA_LOG_FORMAT=json`` gives one JSON object per line, each line naming the event, task
and worker it is about; the access log shows requests at INFO, the health probes
(``GET /health``, ``GET /metrics``) only at DEBUG; text lines keep their timestamps."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import endpoint_worker
from tests.e2e.serving import make_home, post_github, pr_payload
from tests.e2e.writing import BASE, FAST_WRITES, GITHUB_TOKEN, HEAD, writes_settled

#: RFC 3339, UTC, milliseconds
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
#: a text line: 2026-12-06T22:41:58.123 INFO mecha.serve: … (local time)
TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: "
)
POLICY = "policy:\n  comment: {allow: true}\n"


def _run(tmp_path: Path, env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """A webhook through a real serve to a comment on the GitHub emulator; then two
    probes of /health and one of /metrics. The serve's stderr and the event shown."""
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge, InstantWorker() as worker:
        home = make_home(tmp_path, config=FAST_WRITES, github_token=GITHUB_TOKEN)
        forge.add_pull("octo", "app", 7, base_sha=BASE, head_sha=HEAD)
        worker.set(result={"output": "fine", "comment": {"body": "looks fine"}})
        endpoint_worker(home, "reviewer", worker.url, extra=POLICY)
        with ServeProcess(home, env={"GITHUB_API_URL": forge.github_url, **env}) as server:
            answer = post_github(server.url, pr_payload())
            assert answer.status_code == 202, answer.text
            shown = writes_settled(server.url, answer.json()["id"], count=1)
            for path in ("/health", "/health", "/metrics"):
                assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 200
    assert [w["state"] for w in shown["writes"]] == ["done"], shown
    return server.log(), shown


def test_json_lines_name_their_event_task_and_worker(tmp_path: Path) -> None:
    log, shown = _run(tmp_path, {"MECHA_LOG_FORMAT": "json", "MECHA_LOG_LEVEL": "INFO"})
    lines = [json.loads(line) for line in log.splitlines()]  # every line is one object
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= line.keys(), line
        assert TS.fullmatch(line["ts"]), line
        assert line["level"] in ("INFO", "WARNING", "ERROR"), line
    event_id, task = shown["id"], shown["tasks"][0]
    webhook = [x for x in lines if '"POST /webhook/github HTTP/1.1" 202' in x["message"]]
    assert [(x["logger"], x.get("event_id")) for x in webhook] == [("uvicorn.access", event_id)]
    completed = f"task {task['id']} for reviewer completed"
    done = [x for x in lines if x["message"].startswith(completed)]
    assert [(x.get("task_id"), x.get("worker"), x.get("event_id")) for x in done] == [
        (task["id"], "reviewer", event_id)
    ], log
    # every line naming the task's id in its text carries it as a field too
    naming = [x for x in lines if f"task {task['id']}" in x["message"]]
    assert all(x.get("task_id") == task["id"] for x in naming), naming
    # lines about nothing in particular carry no empty fields
    assert all(x["event_id"] for x in lines if "event_id" in x), log
    assert lines[0]["message"].startswith("listening on http://127.0.0.1:")
    # probes are DEBUG lines: the readiness wait, two /health and a /metrics left no line
    assert not [x for x in lines if "/health" in x["message"] or "/metrics" in x["message"]], log


def test_debug_level_shows_the_probes_in_timestamped_text(tmp_path: Path) -> None:
    log, shown = _run(tmp_path, {"MECHA_LOG_LEVEL": "DEBUG"})
    lines = log.splitlines()
    assert [line for line in lines if not TEXT_LINE.match(line)] == [], log
    probes = [line for line in lines if " uvicorn.access: " in line and '"GET /health ' in line]
    assert len(probes) >= 2, log  # ServeProcess's readiness probe and the test's two
    assert all(" DEBUG uvicorn.access: " in line for line in probes), probes
    assert any(" DEBUG uvicorn.access: " in x and '"GET /metrics ' in x for x in lines), log
    # a request that is no probe stays an INFO line
    assert any(" INFO uvicorn.access: " in x and '"POST /webhook/github ' in x for x in lines)
    assert shown["id"] not in "".join(probes)
