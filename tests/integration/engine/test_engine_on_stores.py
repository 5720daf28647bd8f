"""The engine over real stores (issue 16): dispatch, crash recovery and write-back, each test
once on a SQLite file and once on a PostgreSQL database of its own.

The engine is the ``Rig`` of tests/unit/engine around its fake ``send``; the store is opened
as the conformance suite opens it (``database`` in conftest.py). A run that stops is a rig
left and its store closed; the next run opens the database again. A serve owns a SQLite file
(``own_database``: every running task is taken back at start); PostgreSQL is shared by
nodes (a running task is taken back once its node's lease ended).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mecha.event import EventState
from mecha.forges.writer import Done
from mecha.policy.writes import Place, Write, WriteState, ledger_key
from mecha.result import Comment, Labels, TaskResult
from mecha.store import Store, TaskUpdate, WritePlan, WriteRecord, WriteUpdate
from mecha.store.common import REQUEUED_DETAIL
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import Step
from mecha.worker.kind import WorkerState
from tests.integration.engine.conftest import Database
from tests.unit.engine.fakes import (
    HEAD,
    Worker,
    definition,
    delivery,
    eventually,
    register,
    transient,
)
from tests.unit.engine.rig import Rig

REMARK = TaskResult(
    output="the review", comment=Comment(body="Looks fine to me."), labels=Labels(add=("wip",))
)
#: comments may be written, labels may not
POLICY = {"comment": {"allow": True}, "labels": {"allow": False}}
PENDING = frozenset({TaskState.PENDING})


def api_tasks(store: Store, worker: str, count: int) -> list[Task]:
    return store.create_tasks(
        [NewTask(worker=worker, event_id="", prompt=f"task {i}") for i in range(count)]
    )


async def reach(store: Store, tasks: list[Task], state: TaskState) -> list[Task]:
    """The tasks once every one of them is in ``state``."""

    def read() -> list[Task] | None:
        now = [store.get_task(t.id) for t in tasks]
        return now if all(t.state is state for t in now) else None

    return await eventually(read, f"{len(tasks)} tasks {state}")


def steps(store: Store, task: Task) -> list[str]:
    return [entry.step for entry in store.list_timeline(task_id=task.id)]


# --- dispatch -------------------------------------------------------------------------


def test_an_event_and_api_tasks_are_sent_and_completed_with_the_answer(
    database: Database, home: Path
) -> None:
    store = database.store
    register(store, definition("w"))
    made = api_tasks(store, "w", 2)
    worker = Worker(TaskResult(output="looks fine"))

    async def main() -> None:
        async with Rig(store, home, send=worker.send, settings=database.settings()) as rig:
            event = await rig.pipeline.receive(delivery("d-1"))
            assert event is not None
            [matched] = await eventually(lambda: store.list_tasks(event_id=event.id), "matched")
            tasks = await reach(store, [*made, matched], TaskState.COMPLETED)
            assert {(t.attempts, t.error, t.result["output"]) for t in tasks} == {
                (1, "", "looks fine")
            }
            await eventually(
                lambda: store.get_event(event.id).state is EventState.COMPLETED, "event completed"
            )
        assert rig.dispatcher.counts["sent"] == rig.dispatcher.counts["completed"] == 3
        for task in made:
            assert steps(store, task) == [Step.CREATED, Step.DISPATCHED, Step.COMPLETED]
        assert steps(store, matched)[:2] == [Step.DISPATCHED, Step.COMPLETED]  # then its policy
        assert [e.step for e in store.list_timeline(event_id=event.id)][:3] == [
            Step.RECEIVED, Step.MATCHED, Step.DISPATCHED,
        ]  # fmt: skip

    asyncio.run(main())
    assert sorted(t.prompt for t in worker.sent) == ["Review Fix the parser", "task 0", "task 1"]
    assert {t.state for t in worker.sent} == {TaskState.RUNNING}  # claimed before it was sent


def test_a_transient_failure_is_sent_again_then_completed(database: Database, home: Path) -> None:
    store = database.store
    register(store, definition("w"))
    [task] = api_tasks(store, "w", 1)
    worker = Worker(transient("503: busy"), TaskResult(output="second time lucky"))

    async def main() -> None:
        async with Rig(store, home, send=worker.send, settings=database.settings()) as rig:
            [done] = await reach(store, [task], TaskState.COMPLETED)
            assert (done.attempts, done.result["output"]) == (2, "second time lucky")
        assert (rig.dispatcher.counts["retried"], rig.dispatcher.counts["failed"]) == (1, 0)

    asyncio.run(main())
    assert [t.attempts for t in worker.sent] == [1, 2]
    assert steps(store, task) == [
        Step.CREATED, Step.DISPATCHED, Step.RETRY, Step.DISPATCHED, Step.COMPLETED,
    ]  # fmt: skip


def test_past_max_retries_a_task_is_dead_lettered_failed(database: Database, home: Path) -> None:
    store = database.store
    register(store, definition("w", max_retries=2))
    [task] = api_tasks(store, "w", 1)
    worker = Worker(transient("503: still busy"))

    async def main() -> None:
        async with Rig(store, home, send=worker.send, settings=database.settings()) as rig:
            [failed] = await reach(store, [task], TaskState.FAILED)
            assert failed.attempts == 3
            assert failed.error == "dead-letter after 3 attempts: 503: still busy"
            await database.polls()  # and it is not picked up again
        counts = rig.dispatcher.counts
        assert (counts["retried"], counts["failed"], counts["dead_lettered"]) == (2, 1, 1)

    asyncio.run(main())
    assert len(worker.sent) == 3
    assert steps(store, task) == [
        Step.CREATED, Step.DISPATCHED, Step.RETRY, Step.DISPATCHED, Step.RETRY, Step.DISPATCHED,
        Step.FAILED,
    ]  # fmt: skip


def test_each_worker_has_at_most_its_concurrency_in_flight(database: Database, home: Path) -> None:
    store = database.store
    register(store, definition("pair", concurrency=2), definition("solo"))
    tasks = api_tasks(store, "pair", 5) + api_tasks(store, "solo", 3)
    worker = Worker(gated=True)

    async def main() -> None:
        async with Rig(store, home, send=worker.send, settings=database.settings()):
            await eventually(lambda: worker.flying() >= 3, "3 in flight")
            await database.polls()  # the store is read again: still no more than that
            assert worker.in_flight == {"pair": 2, "solo": 1}
            running = store.list_tasks(state=TaskState.RUNNING)
            assert sorted(t.worker for t in running) == ["pair", "pair", "solo"]
            assert len(store.list_tasks(state=TaskState.PENDING)) == 5
            worker.gate.set()
            await reach(store, tasks, TaskState.COMPLETED)

    asyncio.run(main())
    assert worker.most == {"pair": 2, "solo": 1}
    assert sorted(t.id for t in worker.sent) == sorted(t.id for t in tasks)  # each once


# --- crash recovery -------------------------------------------------------------------


def test_tasks_left_running_by_a_stopped_run_are_sent_again_exactly_once(
    database: Database, home: Path
) -> None:
    """SQLite: taken back at start whatever their lease (one serve owns the file).
    PostgreSQL: taken back once the lease of the node that claimed them ended."""
    lease = 3600.0 if database.kind == "sqlite" else 1.0
    store = database.store
    register(store, definition("w", concurrency=3))
    tasks = api_tasks(store, "w", 3)
    claims = [
        TaskUpdate(task_id=t.id, state=TaskState.RUNNING, only_from=PENDING, start_attempt=True,
                   step=Step.DISPATCHED, detail="attempt 1 to w", node="gone-1-abcd", lease=lease)
        for t in tasks
    ]  # fmt: skip
    claimed = store.update_tasks(claims)  # the previous run sent them; its worker worked
    store.set_worker_state("w", WorkerState.BUSY)
    store = database.restart()  # ... and that run stopped without an answer
    worker = Worker(TaskResult(output="answered this time"))

    async def main() -> None:
        async with Rig(store, home, send=worker.send, settings=database.settings()) as rig:
            done = await reach(store, tasks, TaskState.COMPLETED)
            assert {(t.attempts, t.result["output"]) for t in done} == {(2, "answered this time")}
            await database.polls()  # more polls and sweeps send nothing again
            await eventually(lambda: store.get_worker("w").state is WorkerState.ONLINE, "online")
        assert rig.dispatcher.counts["recovered"] == 3

    asyncio.run(main())
    assert sorted(t.id for t in worker.sent) == sorted(t.id for t in tasks)
    assert {t.attempts for t in worker.sent} == {2}
    why = (
        REQUEUED_DETAIL
        if database.kind == "sqlite"
        else "node gone-1-abcd stopped renewing its lease on it; sending it again"
    )
    for before in claimed:
        assert before is not None
        timeline = store.list_timeline(task_id=before.id)
        assert [e.step for e in timeline] == [
            Step.CREATED, Step.DISPATCHED, Step.REQUEUED, Step.DISPATCHED, Step.COMPLETED,
        ]  # fmt: skip
        [requeued] = [e for e in timeline if e.step == Step.REQUEUED]
        assert requeued.detail == why
        if database.kind == "postgres":  # not while its lease ran
            assert requeued.at > before.dispatched_at + lease


# --- write-back -----------------------------------------------------------------------


class FakeWriter:
    """A forge client over ``comments`` (the forge's, by ledger key): makes a comment, or with
    ``uncertain`` finds the one made before. With ``hang``, the call never answers once the
    comment is made (until it is cancelled)."""

    def __init__(self, comments: dict[str, str], *, hang: bool = False) -> None:
        self.comments = comments
        self.hang = hang
        #: (ledger key, uncertain) of every call
        self.calls: list[tuple[str, bool]] = []

    async def write(self, write: Write, *, uncertain: bool = False) -> Done:
        self.calls.append((write.key, uncertain))
        if uncertain and write.key in self.comments:
            return Done(detail="comment 1 found, not written again", remote_id="1")
        self.comments[write.key] = write.body
        if self.hang:
            await asyncio.Event().wait()
        return Done(detail="comment 1 created", remote_id="1")

    def preview(self, write: Write) -> str:
        return f"POST {write.place.name} comments"

    async def identity(self) -> str:
        return "mecha-bot"


async def review(rig: Rig, store: Store) -> Task:
    """Deliver a pull request to the reviewer; its task, once completed."""
    event = await rig.pipeline.receive(delivery())
    assert event is not None
    [task] = await eventually(lambda: store.list_tasks(event_id=event.id), "a task made")
    [task] = await reach(store, [task], TaskState.COMPLETED)
    return task


async def settled(store: Store, task: Task) -> WriteRecord:
    def done() -> WriteRecord | None:
        [record] = store.list_writes(task_id=task.id)
        return record if record.state is WriteState.DONE else None

    return await eventually(done, "the write done")


def test_a_comment_passes_the_policy_into_the_ledger_and_is_written_once(
    database: Database, home: Path
) -> None:
    register(database.store, definition("reviewer", policy=POLICY))
    comments: dict[str, str] = {}
    writer = FakeWriter(comments)

    async def first_run(store: Store) -> Rig:
        async with Rig(store, home, send=Worker(REMARK).send, settings=database.settings(),
                       writers={"github": writer}) as rig:  # fmt: skip
            task = await review(rig, store)
            await settled(store, task)
        return rig

    async def next_run(store: Store) -> Rig:
        """The ledger says done: nothing is tried again, however often it is read."""
        async with Rig(store, home, send=Worker(REMARK).send, settings=database.settings(),
                       writers={"github": writer}) as rig:  # fmt: skip
            assert rig.writeback.in_flight == 0  # its first read (at start) found nothing due
            await database.polls()
        return rig

    first = asyncio.run(first_run(database.store))
    store = database.restart()
    again = asyncio.run(next_run(store))
    [task] = store.list_tasks()
    [record] = store.list_writes(task_id=task.id)
    assert (record.write.action, record.state, record.attempts) == ("comment", WriteState.DONE, 1)
    assert (record.remote_id, record.detail) == ("1", "comment 1 created")
    assert writer.calls == [(record.key, False)]
    assert list(comments.values()) == ["Looks fine to me."]
    order = steps(store, task)
    assert order.index(Step.POLICY) < order.index(Step.COMPLETED) < order.index(Step.WRITTEN)
    assert order.count(Step.WRITTEN) == 1
    denied = [e.detail for e in store.list_timeline(task_id=task.id) if e.step == Step.POLICY]
    assert any(d.startswith("denied: ") and "label" in d for d in denied), denied
    assert (first.writeback.counts["written"], first.writeback.counts["denied"]) == (1, 1)
    assert again.writeback.counts["written"] == 0


def test_a_write_left_calling_by_a_stopped_run_is_finished_as_uncertain_without_a_second_write(
    database: Database, home: Path
) -> None:
    register(database.store, definition("reviewer", policy=POLICY))
    comments: dict[str, str] = {}
    stalled, later = FakeWriter(comments, hang=True), FakeWriter(comments)

    async def stopped_run(store: Store) -> str:
        worker = Worker(REMARK)
        async with Rig(store, home, send=worker.send, settings=database.settings(),
                       writers={"github": stalled}) as rig:  # fmt: skip
            task = await review(rig, store)
            await eventually(lambda: stalled.calls, "the forge called")
            [record] = store.list_writes(task_id=task.id)
            assert (record.state, record.attempts) == (WriteState.CALLING, 1)
            await rig.writeback.drain(0.0)  # the stop did not wait for the forge's answer
        return task.id

    async def next_run(store: Store) -> WriteRecord:
        worker = Worker(REMARK)
        async with Rig(store, home, send=worker.send, settings=database.settings(),
                       writers={"github": later}):  # fmt: skip
            record = await settled(store, store.get_task(task_id))
        assert worker.sent == []  # the task was completed: only its write was owed
        return record

    task_id = asyncio.run(stopped_run(database.store))
    [left] = database.store.list_writes(task_id=task_id)
    assert left.state is WriteState.CALLING  # as the stop left it
    record = asyncio.run(next_run(database.restart()))
    assert stalled.calls == [(record.key, False)]
    assert later.calls == [(record.key, True)]  # it looked on the forge first
    assert (record.state, record.attempts) == (WriteState.DONE, 2)
    assert record.detail == "comment 1 found, not written again"
    assert list(comments.values()) == ["Looks fine to me."]  # written once
    assert steps(database.store, database.store.get_task(task_id)).count(Step.WRITTEN) == 1


def test_a_write_a_dead_node_left_calling_is_taken_up_as_uncertain_once_its_lease_ended(
    database: Database, home: Path
) -> None:
    """As serve claims writes: under its node's lease. SQLite: taken up at start (one serve
    owns the file: recover ends the leases). PostgreSQL: once the dead node's lease ended."""
    lease = 3600.0 if database.kind == "sqlite" else 1.0
    store = database.store
    register(store, definition("reviewer", policy=POLICY))
    [task] = api_tasks(store, "reviewer", 1)  # a task its run completed, its write planned
    store.update_tasks([TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING,
                                   start_attempt=True)])  # fmt: skip
    store.update_tasks([TaskUpdate(task_id=task.id, state=TaskState.COMPLETED,
                                   only_from=frozenset({TaskState.RUNNING}))])  # fmt: skip
    place = Place(forge="github", repo="octo/hello", number=7, head_sha=HEAD)
    key = ledger_key(event_id="", worker="reviewer", action="comment", target=place.name,
                     head_sha=HEAD)  # fmt: skip
    write = Write(key=key, worker="reviewer", action="comment", place=place, body="Looks fine.")
    store.plan_writes([WritePlan(task_id=task.id, event_id="", writes=[write])])
    [claimed] = store.update_writes([
        WriteUpdate(key=key, state=WriteState.CALLING, only_from=frozenset({WriteState.PLANNED}),
                    start_attempt=True, node="gone-1-abcd", lease=lease)
    ])  # fmt: skip
    assert claimed is not None and claimed.lease_until > 0
    comments = {key: write.body}  # its call reached the forge; the node died before the answer
    later = FakeWriter(comments)
    store = database.restart()

    async def next_run() -> WriteRecord:
        async with Rig(store, home, send=Worker().send, settings=database.settings(),
                       writers={"github": later}):  # fmt: skip
            return await settled(store, task)

    record = asyncio.run(next_run())
    assert later.calls == [(key, True)]  # it looked on the forge first
    assert (record.state, record.attempts, record.detail) == (
        WriteState.DONE, 2, "comment 1 found, not written again",
    )  # fmt: skip
    assert comments == {key: "Looks fine."}  # written once
    [written] = [e for e in store.list_timeline(task_id=task.id) if e.step == Step.WRITTEN]
    if database.kind == "postgres":  # not while its lease ran
        assert written.at > claimed.lease_until
