"""Pruning, on every store: finished rows past their time go, what is in use stays."""

from __future__ import annotations

import os
import time

from mecha.event import EventState
from mecha.policy.writes import Place, Write, WriteState, ledger_key
from mecha.store import EventOutcome, TaskUpdate, WritePlan
from mecha.store.pruning import PruneCounts
from mecha.store.sqlite.store import SqliteStore
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import Step
from mecha.worker.matching import Decision, Outcome
from tests.integration.store.stores import AnyStore, arrive, delivery, rows, sqlite_only

PENDING = frozenset({TaskState.PENDING})
RUNNING = frozenset({TaskState.RUNNING})
PLACE = Place(forge="github", repo="octo/app", number=7, head_sha="a" * 40)
KINDS = ("events", "tasks", "timeline", "writes")


def everything_before(when: float) -> dict[str, float]:
    return dict.fromkeys(KINDS, when)


def later() -> dict[str, float]:
    """Cut times after every row made so far: all of them are old enough."""
    return everything_before(time.time() + 60)


def event_with(store: AnyStore, name: str, workers: tuple[str, ...]) -> tuple[str, list[Task]]:
    """An event taken by ``workers`` (one task each), or skipped when there are none."""
    made: list[Task] = []

    def decide(event):  # type: ignore[no-untyped-def]
        return EventOutcome(
            event_id=event.id, state=EventState.MATCHED if workers else EventState.SKIPPED,
            decisions=[Decision(worker=w, outcome=Outcome.MATCHED, rule=0, reason="ok")
                       for w in workers],
            tasks=[NewTask(worker=w, event_id=event.id, prompt=f"p-{w}") for w in workers],
        )  # fmt: skip

    [event] = arrive(store, [delivery(name)], decide, made)
    assert event is not None
    return event.id, made


def run(store: AnyStore, task: Task) -> None:
    store.update_tasks([TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING,
                                   start_attempt=True, step=Step.DISPATCHED)])  # fmt: skip


def finish(store: AnyStore, task: Task, plan: WritePlan | None = None) -> None:
    run(store, task)
    done = TaskUpdate(task_id=task.id, state=TaskState.COMPLETED, only_from=RUNNING,
                      result={"output": "ok"}, step=Step.COMPLETED, plan=plan)  # fmt: skip
    store.update_tasks([done])


def comment(event_id: str, task: Task, state: WriteState) -> WritePlan:
    key = ledger_key(event_id=event_id, worker=task.worker, action="comment",
                     target=PLACE.name, head_sha=PLACE.head_sha)  # fmt: skip
    write = Write(key=key, worker=task.worker, action="comment", place=PLACE, body="hi")
    return WritePlan(task_id=task.id, event_id=event_id, writes=[write], state=state)


def test_old_finished_work_goes_and_what_is_in_use_stays(store: AnyStore) -> None:
    done_id, done_tasks = event_with(store, "done", ("a", "b"))
    for task in done_tasks:
        finish(store, task)
    half_id, [half_done, half_pending] = event_with(store, "half", ("a", "b"))
    finish(store, half_done)
    busy_id, [busy] = event_with(store, "busy", ("a",))
    run(store, busy)
    skipped_id, _ = event_with(store, "skipped", ())
    [received] = store.insert_events([delivery("received")])  # not matched yet
    assert received is not None
    open_id, [open_task] = event_with(store, "open-write", ("a",))
    finish(store, open_task)
    store.plan_writes([comment(open_id, open_task, WriteState.PLANNED)])
    sent_id, [sent_task] = event_with(store, "sent", ("a",))
    finish(store, sent_task, plan=comment(sent_id, sent_task, WriteState.DRY_RUN))
    [api_task] = store.create_tasks([NewTask(worker="a", event_id="", prompt="by hand")])
    finish(store, api_task)

    counted = store.count_prunable(later())
    removed = store.prune(later(), limit=10_000)

    assert removed == counted
    events = {e.id for e in store.list_events(limit=100)}
    assert events == {half_id, busy_id, received.id, open_id}
    assert {done_id, skipped_id, sent_id}.isdisjoint(events)
    tasks = {t.id for t in store.list_tasks(limit=100)}
    assert tasks == {half_pending.id, busy.id, open_task.id}  # unfinished, or a write open
    assert [w.state for w in store.list_writes(event_id=open_id)] == [WriteState.PLANNED]
    assert store.list_writes(event_id=sent_id) == []  # a dry run is settled: it goes
    assert rows(store, "event_matches", f"event_id = '{done_id}'") == 0  # with its event
    # the timeline of unfinished events and tasks stays whole; every other entry was old
    unfinished = f"event_id IN ('{half_id}', '{busy_id}', '{received.id}')"
    assert rows(store, "timeline") == rows(store, "timeline", unfinished) > 0
    assert rows(store, "timeline", f"event_id = '{done_id}'") == 0
    assert [e.step for e in store.list_timeline(task_id=busy.id)] == [Step.DISPATCHED]
    assert removed.events == 3 and removed.tasks == 5 and removed.writes == 1
    assert store.prune(later(), limit=10_000) == PruneCounts()  # nothing more is due


def test_rows_younger_than_the_cut_stay(store: AnyStore) -> None:
    made_before = time.time() - 60
    _, tasks = event_with(store, "young", ("a",))
    finish(store, tasks[0])
    arrive(store, [delivery("skipped-young")], lambda e: EventOutcome(
        event_id=e.id, state=EventState.SKIPPED))  # fmt: skip
    assert store.count_prunable(everything_before(made_before)) == PruneCounts()
    assert store.prune(everything_before(made_before)) == PruneCounts()
    assert rows(store, "events") == 2 and rows(store, "tasks") == 1


def test_a_kind_left_out_is_kept_and_so_are_events_whose_tasks_are(store: AnyStore) -> None:
    with_tasks, [task] = event_with(store, "with-task", ("a",))
    finish(store, task)
    skipped, _ = event_with(store, "skipped", ())
    keep_tasks = {k: v for k, v in later().items() if k != "tasks"}
    removed = store.prune(keep_tasks, limit=100)
    assert removed.events == 1 and removed.tasks == 0
    assert {e.id for e in store.list_events()} == {with_tasks}
    assert store.get_task(task.id).state is TaskState.COMPLETED
    assert rows(store, "timeline") == 0  # the timeline was not left out
    assert skipped not in {e.id for e in store.list_events()}


def test_pruning_goes_in_batches_of_at_most_the_limit(store: AnyStore) -> None:
    arrive(
        store,
        [delivery(f"d-{n}") for n in range(1_200)],
        lambda e: EventOutcome(event_id=e.id, state=EventState.SKIPPED),
    )
    entries = rows(store, "timeline")
    assert store.count_prunable(later()) == PruneCounts(events=1_200, timeline=entries)
    batches = []
    while (batch := store.prune(later(), limit=500)).total:
        batches.append(batch)
    whole, last = divmod(1_200 + entries, 500)
    assert [b.total for b in batches] == [500] * whole + ([last] if last else [])
    assert batches[0] == PruneCounts(timeline=500)  # the timeline before the events
    assert sum(batches, PruneCounts()) == PruneCounts(events=1_200, timeline=entries)
    assert rows(store, "events") == 0 and rows(store, "timeline") == 0


@sqlite_only
def test_reclaim_empties_the_log_and_freed_room_is_used_again(store: SqliteStore) -> None:
    def fill(prefix: str) -> None:
        for chunk in range(4):
            arrive(
                store,
                [delivery(f"{prefix}-{chunk}-{n}", raw=os.urandom(100_000)) for n in range(25)],
                lambda e: EventOutcome(event_id=e.id, state=EventState.SKIPPED),
            )

    fill("first")
    assert store.disk_usage().wal > 0
    assert store.prune(later(), limit=1_000).events == 100
    after = store.reclaim()
    assert after.wal == 0 and after.free > 5_000_000  # the removed rows' pages, free
    fill("second")  # as much again: it goes into the free pages
    grown = store.reclaim()
    assert grown.database <= after.database + 1_000_000
    assert grown.free < after.free


def test_the_timeline_of_an_unfinished_event_stays_whole(store: AnyStore) -> None:
    [waiting] = store.insert_events([delivery("waiting")])  # not matched yet: no task
    assert waiting is not None
    matched_id, _ = event_with(store, "matched", ("a",))  # its task still pending
    assert store.count_prunable(later()).timeline == 0
    store.prune(later(), limit=10_000)
    assert [e.step for e in store.list_timeline(event_id=waiting.id)] == [Step.RECEIVED]
    assert [e.step for e in store.list_timeline(event_id=matched_id)] == [
        Step.RECEIVED, Step.MATCHED
    ]  # fmt: skip
