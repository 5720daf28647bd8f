"""Shared set-up for dispatch tests: fast settings, workers pointed at instant workers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from mecha.store.sqlite.store import open_sqlite
from mecha.worker.kind import WorkerState
from tests.e2e.serving import mecha_cli

#: config.yml for tests: retries after 0.1 s, 0.2 s, …; health every 0.2 s
FAST = """dispatch:
  retry_base: 100ms
  retry_cap: 2s
  health_interval: 200ms
  poll_interval: 100ms
"""
RULE = """  - source: github
    on: [pull_request.*]
    prompt: "Review #{{.number}}: {{.title}}"
"""


def endpoint_worker(
    home: Path, name: str, url: str, *, extra: str = "", online: bool = True, rules: str = RULE
) -> None:
    """Register an unmanaged worker at ``url`` (``extra``: more top-level YAML lines)."""
    path = home / f"{name}.yml"
    path.write_text(f"name: {name}\nendpoint: {url}\n{extra}events:\n{rules}", encoding="utf-8")
    done = mecha_cli(home, "worker", "add", str(path))
    assert done.returncode == 0, done.stderr
    if online:
        set_state(home, name, WorkerState.ONLINE)


def set_state(home: Path, name: str, state: WorkerState) -> None:
    """What `mecha worker start/stop` records, written straight to the store."""
    store = open_sqlite(home / "mecha.db")
    try:
        store.set_worker_state(name, state)
    finally:
        store.close()


def wait_task(
    url: str, event_id: str, *, states: tuple[str, ...] = ("completed", "failed"),
    count: int = 1, timeout: float = 60.0,
) -> list[dict[str, Any]]:  # fmt: skip
    """The event's tasks once ``count`` of them are in one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        shown = httpx.get(f"{url}/event/{event_id}", timeout=10).json()
        tasks: list[dict[str, Any]] = shown.get("tasks", [])
        if sum(1 for t in tasks if t["state"] in states) >= count:
            return tasks
        if time.monotonic() > deadline:
            raise AssertionError(f"tasks of {event_id} did not reach {states}: {tasks}")
        time.sleep(0.03)


def timeline(url: str, event_id: str) -> list[dict[str, Any]]:
    """The event's timeline as the API shows it."""
    entries: list[dict[str, Any]] = httpx.get(f"{url}/event/{event_id}", timeout=10).json()[
        "timeline"
    ]
    return entries
