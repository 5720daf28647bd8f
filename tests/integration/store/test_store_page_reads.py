"""The dashboard's other reads, on every store: tasks paged with a cursor, failed writes,
each worker's figures, and what changed after a time (live updates)."""

from __future__ import annotations

import time
from typing import Any

from mecha.event import EventState
from mecha.policy.writes import Place, Write, WriteState, ledger_key
from mecha.store import EventOutcome, TaskUpdate, WritePlan, WriteUpdate
from mecha.task import NewTask, Task, TaskState
from mecha.worker.matching import Decision, Outcome
from tests.integration.store.stores import AnyStore
from tests.integration.store.test_store_pages import event, outcome, put

PENDING = frozenset({TaskState.PENDING})
RUNNING = frozenset({TaskState.RUNNING})


def start(task: Task) -> TaskUpdate:
    return TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING,
                      start_attempt=True)  # fmt: skip


def end(task: Task, state: TaskState, error: str = "") -> TaskUpdate:
    return TaskUpdate(task_id=task.id, state=state, only_from=RUNNING, error=error)


def tasks_of(store: AnyStore, n: int, at: float, workers: list[str]) -> list[Task]:
    """Event ``n`` arrived at ``at``, taken by ``workers``: their tasks, in worker order."""
    made = event(n, at)
    put(store, (made, outcome(made, workers)))
    return sorted(store.list_tasks(event_id=made.id), key=lambda t: workers.index(t.worker))


def walk_tasks(store: AnyStore, limit: int, **query: Any) -> list[str]:
    seen: list[str] = []
    before: tuple[float, str] | None = None
    for _ in range(1000):
        page = store.list_tasks(limit=limit, before=before, **query)
        seen += [t.id for t in page]
        if len(page) < limit:
            return seen
        before = (page[-1].created_at, page[-1].id)
    raise AssertionError("the pages never ended")


def test_tasks_are_paged_with_a_cursor_through_ties(store: AnyStore) -> None:
    # seven tasks made at one time (one event, seven workers), then more at other times
    workers = [f"w{n}" for n in range(7)]
    tied = tasks_of(store, 1, 100.0, workers)
    later = tasks_of(store, 2, 200.0, ["w0", "w1"])
    earlier = tasks_of(store, 3, 50.0, ["w2"])
    everything = [t.id for t in store.list_tasks(limit=100)]
    assert len(everything) == len(set(everything)) == 10
    # newest first, and a tie in the order made, latest first (as before cursors)
    assert everything == [t.id for t in [*later[::-1], *tied[::-1], *earlier]]
    for limit in (1, 2, 3, 4, 6, 10):
        assert walk_tasks(store, limit) == everything
    assert walk_tasks(store, 2, worker="w1") == [later[1].id, tied[1].id]
    assert store.update_tasks([start(t) for t in tied[2:5]]) != [None] * 3
    running = [t.id for t in store.list_tasks(state=TaskState.RUNNING)]
    assert running == [tied[4].id, tied[3].id, tied[2].id]
    assert walk_tasks(store, 1, state=TaskState.RUNNING) == running
    assert walk_tasks(store, 2, state=TaskState.PENDING) == [
        t for t in everything if t not in running
    ]  # fmt: skip
    assert walk_tasks(store, 3, event_id=tied[0].event_id) == [t.id for t in tied[::-1]]


def test_failed_writes_are_paged_newest_first(store: AnyStore) -> None:
    place = Place(forge="github", repo="octo/hello", number=7, head_sha="abc123")

    def write(n: int) -> Write:
        key = ledger_key(event_id=f"ev{n}", worker="w", action="comment", target=place.name,
                         head_sha=place.head_sha)  # fmt: skip
        return Write(key=key, worker="w", action="comment", place=place, body=f"hello {n}")

    writes = [write(n) for n in range(7)]
    store.plan_writes([WritePlan(task_id="t1", event_id="ev", writes=writes)])
    opened = frozenset({WriteState.PLANNED, WriteState.CALLING})
    ends = [WriteState.FAILED, WriteState.DEAD, WriteState.DONE, WriteState.FAILED,
            WriteState.PLANNED, WriteState.DEAD, WriteState.FAILED]  # fmt: skip
    for w, state in zip(writes, ends, strict=True):
        if state is not WriteState.PLANNED:
            [changed] = store.update_writes([WriteUpdate(key=w.key, state=state, only_from=opened,
                                                         detail=f"ended {state}")])  # fmt: skip
            assert changed is not None
    failed = store.failed_writes(limit=100)
    gone = (WriteState.FAILED, WriteState.DEAD)
    assert sorted(r.key for r in failed) == sorted(
        w.key for w, s in zip(writes, ends, strict=True) if s in gone
    )  # fmt: skip
    assert [(r.updated_at, r.key) for r in failed] == sorted(
        [(r.updated_at, r.key) for r in failed], reverse=True
    )  # fmt: skip
    assert failed[0].detail.startswith("ended")
    seen: list[str] = []
    before: tuple[float, str] | None = None
    while page := store.failed_writes(limit=2, before=before):
        seen += [r.key for r in page]
        before = (page[-1].updated_at, page[-1].key)
    assert seen == [r.key for r in failed]
    assert store.failed_writes(limit=1) == failed[:1]


def test_worker_figures_count_wait_run_finish_and_latency(store: AnyStore) -> None:
    assert store.worker_figures(since=0.0) == {}
    made = [tasks_of(store, n, 1000.0 * (n + 1), ["review", "build"]) for n in range(5)]
    review = [pair[0] for pair in made]
    build = [pair[1] for pair in made]
    extra = tasks_of(store, 9, 9000.0, ["lint"])
    assert store.update_tasks([start(t) for t in (*review, *build[:2])]) != [None]
    [ended] = [t for t in store.update_tasks([
        end(review[0], TaskState.COMPLETED), end(review[1], TaskState.COMPLETED),
        end(review[2], TaskState.COMPLETED), end(review[3], TaskState.FAILED, "first failure"),
        end(build[0], TaskState.FAILED, "the build broke"),
    ])[:1] if t]  # fmt: skip
    finished = ended.finished_at
    assert finished > 0
    time.sleep(0.01)  # the later failure finishes later, whatever the clock's step
    assert store.update_tasks([end(review[4], TaskState.FAILED, "second failure")]) != [None]
    cancel = TaskUpdate(task_id=build[1].id, state=TaskState.CANCELLED, only_from=RUNNING)
    assert store.update_tasks([cancel]) != [None]
    figures = store.worker_figures(since=0.0)
    assert sorted(figures) == ["build", "lint", "review"]
    r = figures["review"]
    assert (r.worker, r.pending, r.running, r.completed, r.failed) == ("review", 0, 0, 3, 2)
    assert r.last_error == "second failure"
    # latencies from creation to completion: finished - 1000, - 2000, - 3000
    assert r.latency_p50 is not None and r.latency_p95 is not None
    assert abs(r.latency_p50 - (finished - 2000.0)) < 1e-3
    assert abs(r.latency_p95 - (finished - 2000.0 + 0.9 * 1000.0)) < 1e-3  # interpolated
    b = figures["build"]
    # a cancelled task is no failure
    assert (b.pending, b.running, b.completed, b.failed) == (3, 0, 0, 1)
    assert (b.latency_p50, b.latency_p95, b.last_error) == (None, None, "the build broke")
    lint = figures["lint"]
    assert (lint.pending, lint.running, lint.completed, lint.failed) == (1, 0, 0, 0)
    assert (lint.latency_p50, lint.last_error) == (None, "")
    assert extra[0].worker == "lint"
    # only tasks finished since ``since`` are counted; what waits and the last error stay
    later = store.worker_figures(since=time.time() + 3600)
    assert (later["review"].completed, later["review"].failed) == (0, 0)
    assert later["review"].latency_p50 is None
    assert later["review"].last_error == "second failure"
    assert later["build"].pending == 3
    store.update_tasks([start(build[4])])
    assert store.worker_figures(since=0.0)["build"].running == 1


def test_one_completed_task_is_both_percentiles(store: AnyStore) -> None:
    [task] = tasks_of(store, 1, 500.0, ["solo"])
    store.update_tasks([start(task)])
    [done] = store.update_tasks([end(task, TaskState.COMPLETED)])
    assert done is not None
    figures = store.worker_figures(since=0.0)["solo"]
    assert figures.latency_p50 == figures.latency_p95 == done.finished_at - 500.0


def test_recent_changes_are_events_and_tasks_changed_after_a_time(store: AnyStore) -> None:
    first, second, third = event(1, 10.0), event(2, 20.0), event(3, 30.0)
    put(store, (first, outcome(first, ["review"])), (second, None), (third, None))
    events, tasks = store.recent_changes(after=0.0)
    assert [row.event.id for row in events] == [first.id, second.id, third.id]  # oldest first
    assert [row.workers[0].worker for row in events[:1]] == ["review"]
    assert [(t.worker, t.created_at) for t in tasks] == [("review", 10.0)]
    events, tasks = store.recent_changes(after=10.0)
    assert ([row.event.id for row in events], tasks) == ([second.id, third.id], [])
    assert store.recent_changes(after=30.0) == ([], [])
    mark = time.time() - 1
    [review] = store.list_tasks(event_id=first.id)
    [started] = store.update_tasks([start(review)])
    assert started is not None
    events, tasks = store.recent_changes(after=mark)
    # the event became dispatched with its task's start
    assert [(row.event.id, row.event.state) for row in events] == [
        (first.id, EventState.DISPATCHED)
    ]  # fmt: skip
    assert [(row.workers[0].task_state) for row in events] == [TaskState.RUNNING]
    assert [(t.id, t.state) for t in tasks] == [(review.id, TaskState.RUNNING)]
    passed = Decision(worker="review", outcome=Outcome.NOT_MATCHED)
    store.record_outcomes(
        [EventOutcome(event_id=second.id, state=EventState.SKIPPED, decisions=[passed])]
    )
    events, _ = store.recent_changes(after=started.updated_at)
    assert [row.event.id for row in events] == [second.id]


def test_recent_changes_keep_a_tie_whole_past_the_limit(store: AnyStore) -> None:
    # five events changed at one time, two before: a limit of three ends inside the tie
    made = [event(n, 100.0 if n > 1 else 90.0 + n) for n in range(7)]
    put(store, *[(e, outcome(e, ["review"])) for e in made])
    events, tasks = store.recent_changes(after=0.0, limit=3)
    assert [row.event.id for row in events[:2]] == [made[0].id, made[1].id]
    assert sorted(row.event.id for row in events[2:]) == sorted(e.id for e in made[2:])
    assert [row.event.updated_at for row in events] == [90.0, 91.0, *[100.0] * 5]
    assert len(tasks) == 7  # the tasks' tie too
    assert [(t.updated_at, t.id) for t in tasks] == sorted((t.updated_at, t.id) for t in tasks)
    events, tasks = store.recent_changes(after=0.0, limit=2)
    assert [row.event.id for row in events] == [made[0].id, made[1].id]
    assert store.recent_changes(after=100.0, limit=3) == ([], [])


def test_api_tasks_count_in_figures_and_pages(store: AnyStore) -> None:
    [api] = store.create_tasks([NewTask(worker="adhoc", event_id="", prompt="hi")])
    assert store.list_tasks(before=(api.created_at + 1, "")) == [api]
    assert store.list_tasks(before=(api.created_at, api.id)) == []
    assert store.worker_figures(since=0.0)["adhoc"].pending == 1
