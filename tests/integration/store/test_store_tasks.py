"""Task state changes, event following, recovery and the timeline, on every store."""

from __future__ import annotations

import time

import pytest

from mecha.errors import TaskNotFound
from mecha.event import EventState
from mecha.store import EventOutcome, TaskUpdate, WorkerRecord
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import Step
from mecha.worker.kind import WorkerKind, WorkerState
from mecha.worker.matching import Decision, Outcome
from tests.integration.store.stores import AnyStore, arrive, delivery

PENDING = frozenset({TaskState.PENDING})
RUNNING = frozenset({TaskState.RUNNING})


def matched(store: AnyStore, workers: tuple[str, ...] = ("a", "b")) -> tuple[str, list[Task]]:
    """An event taken by ``workers``, one task each."""
    made: list[Task] = []

    def decide(event):  # type: ignore[no-untyped-def]
        return EventOutcome(
            event_id=event.id, state=EventState.MATCHED,
            decisions=[Decision(worker=w, outcome=Outcome.MATCHED, rule=0, reason="ok")
                       for w in workers],
            tasks=[NewTask(worker=w, event_id=event.id, prompt=f"p-{w}") for w in workers],
        )  # fmt: skip

    [event] = arrive(store, [delivery()], decide, made)
    assert event is not None
    return event.id, made


def update(task: Task, state: TaskState, only: frozenset[TaskState], **kw: object) -> TaskUpdate:
    return TaskUpdate(task_id=task.id, state=state, only_from=only, **kw)  # type: ignore[arg-type]


def test_tasks_made_while_storing_are_reported(store: AnyStore) -> None:
    event_id, made = matched(store)
    assert sorted(t.worker for t in made) == ["a", "b"]
    assert {t.id for t in store.list_tasks(event_id=event_id)} == {t.id for t in made}


def test_a_guarded_update_applies_once(store: AnyStore) -> None:
    _, [task, _] = matched(store)
    claim = update(task, TaskState.RUNNING, PENDING, start_attempt=True, step=Step.DISPATCHED)
    first, second = store.update_tasks([claim, claim])
    assert first is not None and first.state is TaskState.RUNNING and first.attempts == 1
    assert first.dispatched_at > 0
    assert second is None  # no longer pending: the second claim changes nothing
    assert store.get_task(task.id).attempts == 1


def test_an_unknown_task_is_not_applied(store: AnyStore) -> None:
    ghost = TaskUpdate(task_id="nope", state=TaskState.RUNNING, only_from=PENDING)
    assert store.update_tasks([ghost]) == [None]


def test_the_event_follows_its_tasks(store: AnyStore) -> None:
    event_id, [a, b] = matched(store)
    store.update_tasks([update(a, TaskState.RUNNING, PENDING)])
    assert store.get_event(event_id).state is EventState.DISPATCHED
    store.update_tasks([update(a, TaskState.COMPLETED, RUNNING, result={"output": "x"})])
    assert store.get_event(event_id).state is EventState.DISPATCHED  # b is still pending
    store.update_tasks([update(b, TaskState.CANCELLED, PENDING)])
    event = store.get_event(event_id)
    assert event.state is EventState.FAILED
    assert event.error == "1 of 2 tasks did not complete"
    assert store.get_task(a.id).result == {"output": "x"}
    assert store.get_task(a.id).finished_at > 0


def test_all_completed_completes_the_event(store: AnyStore) -> None:
    event_id, tasks = matched(store)
    store.update_tasks([update(t, TaskState.RUNNING, PENDING) for t in tasks])
    store.update_tasks([update(t, TaskState.COMPLETED, RUNNING) for t in tasks])
    assert store.get_event(event_id).state is EventState.COMPLETED


def test_a_retry_waits_until_its_time(store: AnyStore) -> None:
    _, [a, b] = matched(store)
    later = time.time() + 60
    store.update_tasks([update(a, TaskState.RUNNING, PENDING)])
    store.update_tasks([update(a, TaskState.PENDING, RUNNING, next_retry_at=later, error="e")])
    due = store.due_tasks(now=time.time())
    assert [t.id for t in due] == [b.id]
    assert [t.id for t in store.due_tasks(now=later + 1)] == [a.id, b.id]
    assert store.get_task(a.id).error == "e"


def test_recover_requeues_running_tasks_and_resets_busy_workers(store: AnyStore) -> None:
    _, [a, _] = matched(store)
    store.add_workers([WorkerRecord(name="a", kind=WorkerKind.UNMANAGED)])
    store.set_worker_state("a", WorkerState.BUSY)
    store.update_tasks([update(a, TaskState.RUNNING, PENDING, start_attempt=True)])
    assert store.recover() == (1, 1)
    assert store.get_task(a.id).state is TaskState.PENDING
    assert store.get_task(a.id).attempts == 1  # the count stays: it was sent once
    assert store.get_worker("a").state is WorkerState.ONLINE
    steps = [e.step for e in store.list_timeline(task_id=a.id)]
    assert steps[-1] == Step.REQUEUED
    assert store.recover() == (0, 0)


def test_the_timeline_of_an_event_holds_every_step_in_order(store: AnyStore) -> None:
    event_id, [a, _] = matched(store)
    store.update_tasks([update(a, TaskState.RUNNING, PENDING, step=Step.DISPATCHED)])
    store.update_tasks([update(a, TaskState.COMPLETED, RUNNING, step=Step.COMPLETED, detail="d")])
    entries = store.list_timeline(event_id=event_id)
    assert [e.step for e in entries] == ["received", "matched", "dispatched", "completed"]
    assert entries[1].detail == "taken by a, b"
    assert entries[-1].task_id == a.id and entries[-1].detail == "d"
    assert [e.step for e in store.list_timeline(task_id=a.id)] == ["dispatched", "completed"]


def test_api_tasks_have_no_event_and_distinct_dedup_keys(store: AnyStore) -> None:
    one, two = store.create_tasks([NewTask(worker="w", event_id="", prompt="hi")] * 2)
    assert one.dedup_key != two.dedup_key and one.dedup_key.startswith("api:")
    assert store.get_task(one.id[:8]).id == one.id
    assert [e.step for e in store.list_timeline(task_id=one.id)] == [Step.CREATED]
    assert [t.id for t in store.list_tasks(worker="w", state=TaskState.PENDING)] == [two.id, one.id]


def test_an_unknown_task_id_says_how_to_find_one(store: AnyStore) -> None:
    with pytest.raises(TaskNotFound) as caught:
        store.get_task("abcdef123")
    assert "mecha task ls" in caught.value.hint


def test_tasks_are_listed_by_worker_event_and_state_newest_first(store: AnyStore) -> None:
    event_id, [a, b] = matched(store)
    [api] = store.create_tasks([NewTask(worker="a", event_id="", prompt="by hand")])
    store.update_tasks([update(b, TaskState.RUNNING, PENDING)])
    assert [t.id for t in store.list_tasks(worker="a")] == [api.id, a.id]
    assert [t.id for t in store.list_tasks(worker="b")] == [b.id]
    assert [t.id for t in store.list_tasks(event_id=event_id, state=TaskState.PENDING)] == [a.id]
    assert [t.id for t in store.list_tasks(limit=2)] == [api.id, b.id]
    assert store.task_states([a.id, b.id, "nope"]) == {
        a.id: TaskState.PENDING, b.id: TaskState.RUNNING
    }  # fmt: skip
