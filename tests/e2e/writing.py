"""Shared set-up for write-back tests: a forge emulator, fast retries, waiting for writes."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from mecha.testing.forge.api import ForgeEmulator, Recorded
from tests.e2e.dispatching import FAST

#: config.yml for write-back tests: dispatch as FAST, forge retries after 0.1 s, 0.2 s …
FAST_WRITES = (
    FAST
    + """writeback:
  attempts: 5
  retry_base: 100ms
  retry_cap: 1s
"""
)
GITHUB_TOKEN = "ghp_writeback_test_token"
GITLAB_TOKEN = "glpat-writeback-test-token"
HEAD = "a" * 40
BASE = "b" * 40
_OPEN = {"planned", "calling"}


def writes_settled(
    url: str, event_id: str, *, count: int = 1, timeout: float = 60.0
) -> dict[str, Any]:
    """The event once its task is final and ``count`` writes are, none still open."""
    deadline = time.monotonic() + timeout
    while True:
        shown: dict[str, Any] = httpx.get(f"{url}/event/{event_id}", timeout=10).json()
        writes = shown.get("writes", [])
        tasks = shown.get("tasks", [])
        final_tasks = tasks and all(t["state"] in ("completed", "failed") for t in tasks)
        # tasks that all failed write nothing more (their writes are planned as they fail)
        enough = len(writes) >= count or all(t["state"] == "failed" for t in tasks)
        if final_tasks and enough and not any(w["state"] in _OPEN for w in writes):
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"writes of {event_id} did not settle: {json.dumps(shown)[:3000]}")
        time.sleep(0.05)


def forge_writes(forge: ForgeEmulator) -> list[Recorded]:
    """Every request that changes something on the forge (App token requests left out)."""
    return [
        r for r in forge.requests
        if r.method in ("POST", "PATCH", "PUT", "DELETE") and "/access_tokens" not in r.path
    ]  # fmt: skip


def body(request: Recorded) -> Any:
    """A request's JSON body."""
    return json.loads(request.body)


def details(shown: dict[str, Any], step: str) -> list[str]:
    """The details of an event's timeline entries of one step."""
    return [entry["detail"] for entry in shown["timeline"] if entry["step"] == step]
