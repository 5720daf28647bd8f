"""How a running task's progress reads: time against the timeout, tokens where they stream."""

from __future__ import annotations

import pytest

from mecha.cli.task_show import describe_task, state_text
from mecha.runtimes.token_counts import TokenCounts
from mecha.task import Progress, Task, TaskState, progress_json, progress_of, task_json

NOW = 1_800_000_000.0


def task(state: TaskState = TaskState.RUNNING, **fields: object) -> Task:
    values: dict[str, object] = {
        "id": "t" * 32, "worker": "w", "event_id": "", "dedup_key": "api:t", "prompt": "p",
        "state": state, "dispatched_at": NOW - 72.4, "timeout": 600.0,
    }  # fmt: skip
    values.update(fields)
    return Task(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("progress", "text"),
    [
        (Progress(elapsed=72.4, timeout=600, tokens=42), "1m12s of 10m, 42 tokens"),
        (Progress(elapsed=72.9, timeout=600), "1m12s of 10m"),  # whole seconds, not rounded up
        (Progress(elapsed=0.3, timeout=120, tokens=1), "0s of 2m, 1 token"),
        (Progress(elapsed=3725, timeout=5400), "1h2m5s of 1h30m"),
        (Progress(elapsed=5, timeout=90), "5s of 1m30s"),
        (Progress(elapsed=5), "5s"),  # no timeout known (a task claimed before it was kept)
        (Progress(elapsed=-2, timeout=60), "0s of 1m"),  # clocks of two machines
    ],
)
def test_progress_text(progress: Progress, text: str) -> None:
    assert progress.text() == text


def test_only_a_running_task_has_progress() -> None:
    progress = progress_of(task(tokens=3), now=NOW)
    assert progress is not None
    assert round(progress.elapsed, 6) == 72.4
    assert (progress.timeout, progress.tokens) == (600.0, 3)
    for state in (TaskState.PENDING, TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED):
        assert progress_of(task(state), now=NOW) is None
        assert progress_json(task(state), now=NOW) is None
    assert progress_of(task(dispatched_at=0.0), now=NOW) is None  # not started


def test_progress_json_and_the_task_json_carry_it() -> None:
    running = task(tokens=42)
    expected = {"elapsed": 72.4, "timeout": 600.0, "tokens": 42, "text": "1m12s of 10m, 42 tokens"}
    assert progress_json(running, now=NOW) == expected
    shown = task_json(running, now=NOW)
    assert shown["progress"] == expected
    assert shown["timeout"] == 600.0
    assert task_json(task(TaskState.PENDING, timeout=0.0), now=NOW)["timeout"] is None


def test_the_cli_shows_progress_in_the_state() -> None:
    assert state_text(task(tokens=7), now=NOW) == "running 1m12s of 10m, 7 tokens"
    assert state_text(task(TaskState.COMPLETED, tokens=7), now=NOW) == "completed"
    described = describe_task(task(), now=NOW)
    assert "  state:      running 1m12s of 10m\n" in described


def test_token_counts_are_taken_once_and_held_ones_stay() -> None:
    counts = TokenCounts()
    one, two = counts.reporter("one"), counts.reporter("two")
    one(1)
    one(2)
    two(5)
    assert counts.take_changed(held={"two"}) == [("one", 2)]
    assert counts.take_changed() == [("two", 5)]
    assert counts.take_changed() == []
    one(3)
    counts.finish("one")
    assert counts.take_changed() == []  # a finished task is not written any more
    assert "one" not in counts and counts.get("two") == 5


def test_the_cli_names_the_task_that_superseded_one() -> None:
    by = "3f2a9c1d" + "0" * 24
    ended = task(TaskState.SUPERSEDED, superseded_by=by, flow_key="octo/app#7")
    assert state_text(ended, now=NOW) == "superseded by 3f2a9c1d"
    marked = task(superseded_by=by)
    assert state_text(marked, now=NOW) == "running 1m12s of 10m (superseded by 3f2a9c1d)"
    assert "  flow key:   octo/app#7\n" in describe_task(ended, now=NOW)
    shown = task_json(ended, now=NOW)
    assert (shown["state"], shown["superseded_by"], shown["flow_key"]) == (
        "superseded", by, "octo/app#7"
    )  # fmt: skip
