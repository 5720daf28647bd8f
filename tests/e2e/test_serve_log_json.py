"""What a real `mecha serve` logs while a webhook goes through to its write-back:
``MECHA_LOG_FORMAT=json`` gives one JSON object per line, each line naming the event, task
and worker it is about; the access log shows requests at INFO and the health probes
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
COMMENTS = "/github/repos/octo/app/issues/7/comments"


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
    log, shown = _run(tmp_path, {"MECHA_LOG_FORMAT": "json", "MECHA_LOG_LEVEL": "DEBUG"})
    lines = [json.loads(line) for line in log.splitlines()]  # every line is one object
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= line.keys(), line
        assert TS.fullmatch(line["ts"]), line
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR"), line
    assert lines[0]["message"].startswith("listening on http://127.0.0.1:")
    event_id, task_id = shown["id"], shown["tasks"][0]["id"]
    # the webhook's request, as the access log has it, names the event it stored
    webhook = [x for x in lines if '"POST /webhook/github HTTP/1.1" 202' in x["message"]]
    assert [(x["logger"], x["level"], x.get("event_id")) for x in webhook] == [
        ("uvicorn.access", "INFO", event_id)
    ]
    # the task's lines name it, its worker and its event: its completion, and the
    # forge's answer to the comment it wrote (an httpx line, made while writing)
    about = (task_id, "reviewer", event_id)
    done = [x for x in lines if x["message"].startswith(f"task {task_id} for reviewer completed")]
    wrote = [x for x in lines if x["logger"] == "httpx" and f"POST {_forge(log)}" in x["message"]]
    assert COMMENTS in wrote[0]["message"]
    for line in (*done, *wrote):
        assert (line.get("task_id"), line.get("worker"), line.get("event_id")) == about, line
    assert (len(done), len(wrote)) == (1, 1), log
    # lines about nothing in particular carry no such fields, and never empty ones
    assert all(x[key] for x in lines for key in ("event_id", "task_id", "worker") if key in x)
    assert not [x for x in lines if x["message"].startswith("listening") and "event_id" in x]
    # at DEBUG the probes are there, as DEBUG lines
    probes = [x for x in lines if x["logger"] == "uvicorn.access" and "/health" in x["message"]]
    assert len(probes) >= 2 and {x["level"] for x in probes} == {"DEBUG"}, probes


def test_info_shows_requests_but_no_probes_in_timestamped_text(tmp_path: Path) -> None:
    log, shown = _run(tmp_path, {"MECHA_LOG_LEVEL": "INFO"})
    lines = log.splitlines()
    assert [line for line in lines if not TEXT_LINE.match(line)] == [], log
    assert " INFO mecha.serve: listening on http://127.0.0.1:" in lines[0]
    webhook = [x for x in lines if '"POST /webhook/github HTTP/1.1" 202' in x]
    assert len(webhook) == 1 and " INFO uvicorn.access: 127.0.0.1:" in webhook[0], log
    assert any(" INFO uvicorn.access: " in x and f'"GET /event/{shown["id"]} ' in x for x in lines)
    # the readiness wait's probes, two of /health and one of /metrics: no line at all
    assert not [x for x in lines if "/health" in x or "/metrics" in x], log
    assert not [x for x in lines if " DEBUG " in x], log


def _forge(log: str) -> str:
    """The forge emulator's address, as the serve's httpx lines name it."""
    found = re.search(r"POST (http://127\.0\.0\.1:\d+)/github/", log)
    assert found, log
    return found[1]
