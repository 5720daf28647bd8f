"""A CLI that outlives WORKER_TIMEOUT is killed with its whole process group."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mecha.result import failure_of
from tests.images.conftest import StartWorker, contract


def _gone(pid: int) -> bool:
    """The process no longer runs (never existed, or a zombie waiting for its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _all_gone(pids: list[int], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_timeout_kills_the_cli_and_its_children(start_worker: StartWorker) -> None:
    worker = start_worker("claude", WORKER_TIMEOUT="1")
    started = time.monotonic()
    answer = worker.answer("HANG")
    took = time.monotonic() - started
    assert answer["error"] == "task timed out after 1 s"
    assert answer["metadata"]["exit_code"] == 124
    assert answer["metadata"]["timed_out"] is True
    assert failure_of(contract(answer))
    run = worker.runs()[0]
    # the CLI ignores SIGTERM: it takes the SIGKILL after the grace period (that the
    # timeout cut the hang short is the answer above: without it the post would time out)
    assert took >= 1.0
    assert _all_gone([run["pid"], run["child"]]), "the CLI or its child still runs"


def test_worker_takes_tasks_again_after_a_timeout(start_worker: StartWorker) -> None:
    worker = start_worker("codex", WORKER_TIMEOUT="0.5")
    assert worker.answer("HANG")["metadata"]["exit_code"] == 124
    assert worker.health().status_code == 200
    assert worker.answer("REPLY:back")["output"] == "back"
