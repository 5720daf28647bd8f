"""Schedules in a real `mecha serve`: an ``@every 1s`` rule ticks into its worker, each
tick once, with ``tick_time`` and the worker's name as actor; a serve that restarts makes
no tick twice."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx

from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, endpoint_worker
from tests.e2e.serving import make_home

TICKS = """  - source: cron
    schedule: "@every 1s"
    subject: heartbeat
    prompt: "tick {{.tick_time}} for {{.actor}} ({{.subject}})"
"""


def test_a_schedule_ticks_into_its_worker_once_per_time(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        endpoint_worker(home, "pulse", worker.url, rules=TICKS)
        with ServeProcess(home) as serve:
            first = worker.wait_for(2)
            events = httpx.get(f"{serve.url}/events", timeout=10).json()
            shown = httpx.get(f"{serve.url}/metrics", timeout=10).text
        with ServeProcess(home):  # a restart: ticks go on, none made twice
            more = worker.wait_for(len(worker.requests) + 2)
    prompts = [r.prompt for r in more]
    assert len(set(prompts)) == len(prompts), prompts  # one task per tick time
    for received in more:
        assert received.prompt.startswith("tick ") and received.prompt.endswith(
            " for pulse (heartbeat)"
        )
        moment = datetime.fromisoformat(received.prompt.split()[1])
        assert moment.microsecond == 0 and moment.tzinfo is not None
    assert first[0].context["source"] == "cron" and first[0].context["actor"] == "pulse"
    ticks = [e for e in events if e["source"] == "cron"]
    [made] = [line for line in shown.splitlines() if line.startswith("mecha_cron_ticks_total ")]
    assert float(made.split()[1]) >= 2
    assert "mecha_cron_ticks_dropped_total 0" in shown
    assert ticks and all(e["type"] == "tick" and e["subject"] == "heartbeat" for e in ticks)
