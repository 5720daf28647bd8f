"""``last_reviewed_head`` on every store: the head a worker last completed a task on for one
pull request (incremental review's ``last_reviewed_sha``)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from mecha.event import EventState
from mecha.store import EventOutcome, TaskUpdate
from mecha.store.sqlite.reviews import LAST_REVIEWED
from mecha.task import NewTask, Task, TaskState
from mecha.worker.matching import Decision, Outcome
from tests.integration.store.stores import AnyStore, arrive, delivery, sqlite_only

PENDING = frozenset({TaskState.PENDING})
RUNNING = frozenset({TaskState.RUNNING})
H1, H2, H3 = "a1" * 20, "b2" * 20, "c3" * 20


def pushed(
    store: AnyStore, delivery_id: str, *, workers: tuple[str, ...] = ("rev",), **attrs: Any
) -> dict[str, Task]:
    """A pull request event (octo/app#7 on github unless ``attrs`` say otherwise), taken by
    ``workers``: their tasks, pending, by worker."""
    attrs.setdefault("number", 7)
    source = attrs.pop("source", "github")
    subject = attrs.pop("subject", "octo/app")
    made: list[Task] = []

    def decide(event):  # type: ignore[no-untyped-def]
        return EventOutcome(
            event_id=event.id, state=EventState.MATCHED,
            decisions=[Decision(worker=w, outcome=Outcome.MATCHED, rule=0, reason="ok")
                       for w in workers],
            tasks=[NewTask(worker=w, event_id=event.id, prompt="p") for w in workers],
        )  # fmt: skip

    sent = replace(delivery(delivery_id, source=source), subject=subject, attrs=attrs)
    arrive(store, [sent], decide, made)
    return {task.worker: task for task in made}


def end(store: AnyStore, task: Task, state: TaskState = TaskState.COMPLETED) -> None:
    """Run ``task`` and end it in ``state``."""
    [running] = store.update_tasks(
        [TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING)]
    )
    assert running is not None
    [ended] = store.update_tasks([TaskUpdate(task_id=task.id, state=state, only_from=RUNNING)])
    assert ended is not None and ended.state is state


def last(store: AnyStore, worker: str = "rev", **where: Any) -> str:
    where = {"source": "github", "repo": "octo/app", "number": 7, **where}
    return store.last_reviewed_head(worker, **where)


def test_nothing_reviewed_yet_is_empty(store: AnyStore) -> None:
    assert last(store) == ""
    pushed(store, "d-1", head_sha=H1)  # taken, not yet completed
    assert last(store) == ""


def test_the_latest_completed_head_counts(store: AnyStore) -> None:
    first = pushed(store, "d-1", head_sha=H1)["rev"]
    end(store, first)
    assert last(store) == H1
    second = pushed(store, "d-2", head_sha=H2)["rev"]
    assert last(store) == H1  # the second is still pending
    end(store, second)
    assert last(store) == H2


def test_the_task_that_finished_last_wins_not_the_event_that_came_last(store: AnyStore) -> None:
    older = pushed(store, "d-1", head_sha=H1)["rev"]
    newer = pushed(store, "d-2", head_sha=H2)["rev"]
    end(store, newer)
    end(store, older)
    assert last(store) == H1


def test_failed_and_cancelled_tasks_reviewed_nothing(store: AnyStore) -> None:
    end(store, pushed(store, "d-1", head_sha=H1)["rev"])
    end(store, pushed(store, "d-2", head_sha=H2)["rev"], TaskState.FAILED)
    end(store, pushed(store, "d-3", head_sha=H3)["rev"], TaskState.CANCELLED)
    assert last(store) == H1


def test_each_worker_pull_request_repository_and_source_apart(store: AnyStore) -> None:
    tasks = pushed(store, "d-1", workers=("rev", "lint"), head_sha=H1)
    end(store, tasks["rev"])
    end(store, pushed(store, "d-2", number=8, head_sha=H2)["rev"])
    end(store, pushed(store, "d-3", subject="octo/other", head_sha=H3)["rev"])
    end(store, pushed(store, "d-4", source="gitlab", head_sha=H3)["rev"])
    assert last(store) == H1
    assert last(store, "lint") == ""  # its task is still pending
    assert last(store, number=8) == H2
    assert last(store, repo="octo/other") == H3
    assert last(store, source="gitlab") == H3
    assert last(store, number=9) == last(store, "nobody") == ""


def test_a_completed_task_of_an_event_without_a_head_is_passed_over(store: AnyStore) -> None:
    """A comment on the pull request names no head: what it reviewed is not known."""
    end(store, pushed(store, "d-1", head_sha=H1)["rev"])
    end(store, pushed(store, "d-2", comment="/review")["rev"])
    end(store, pushed(store, "d-3", head_sha="")["rev"])
    assert last(store) == H1


@sqlite_only
def test_sqlite_finds_the_pull_requests_events_through_their_index(store: AnyStore) -> None:
    path = store.path  # type: ignore[attr-defined]
    with sqlite3.connect(path) as conn:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {LAST_REVIEWED}", ("github", "o/r", 7, "w"))
        details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX events_pull" in details, details
