"""The operator's actions (``mecha.engine.operator``) on a real SQLite file: each action,
what it records on the timeline with who did it, and each refusal, raised before anything
is written. Replays go through the real pipeline (fake sinks), so today's workers decide."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mecha.engine.operator import Operator, WorkerControl
from mecha.errors import (
    EventNotFound,
    MechaError,
    TaskNotFound,
    TaskStateError,
    UsageError,
    WorkerNotFound,
    WorkerStateError,
    WriteNotFound,
    WriteStateError,
)
from mecha.event import Event
from mecha.policy.writes import Place, Write, WriteState
from mecha.store import Store, TaskUpdate, WorkerRecord, WritePlan, WriteUpdate
from mecha.store.sqlite.store import open_sqlite
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import Step
from mecha.worker.kind import WorkerState
from tests.unit.engine.fakes import EventSink, Journal, TaskSink, definition, delivery, register
from tests.unit.engine.rig import pipeline_alone

WHO = "alice (dashboard, 127.0.0.1)"
PLACE = Place(forge="github", repo="octo/hello", number=7, head_sha="a" * 40)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite file (this module's own, over the engine tests' memory store)."""
    opened = open_sqlite(tmp_path / "mecha.db")
    yield opened
    opened.close()


def api_task(store: Store) -> Task:
    [made] = store.create_tasks([NewTask(worker="alpha", event_id="", prompt="Summarise #12")])
    return made


def moved(store: Store, task: Task, *states: TaskState) -> Task:
    """``task`` taken through ``states`` as serve would (running = an attempt started)."""
    now = task
    for state in states:
        error = "boom" if state is TaskState.FAILED else None
        update = TaskUpdate(
            task_id=task.id, state=state, only_from=frozenset(TaskState),
            start_attempt=state is TaskState.RUNNING, error=error,
        )  # fmt: skip
        [done] = store.update_tasks([update])
        assert done is not None
        now = done
    return now


def steps(store: Store, task: Task) -> list[tuple[str, str]]:
    return [(e.step, e.detail) for e in store.list_timeline(task_id=task.id)]


# --- tasks ---------------------------------------------------------------------------


def test_retry_sends_a_failed_task_again_attempts_reset_and_says_who(store: Store) -> None:
    task = moved(store, api_task(store), TaskState.RUNNING, TaskState.FAILED)
    submitted: list[Sequence[Task]] = []
    done = Operator(store=store, submit=submitted.append).retry_task(task.id[:10], who=WHO)
    assert (done.state, done.attempts, done.error) == (TaskState.PENDING, 0, "")
    assert store.get_task(task.id).state is TaskState.PENDING
    assert steps(store, task)[-1] == (Step.REQUEUED, f"by hand: {WHO}")
    assert [[t.id for t in batch] for batch in submitted] == [[task.id]]


def test_retry_of_a_cancelled_task(store: Store) -> None:
    task = moved(store, api_task(store), TaskState.CANCELLED)
    assert Operator(store=store).retry_task(task.id, who=WHO).state is TaskState.PENDING


@pytest.mark.parametrize(
    ("states", "hint"),
    [
        ((), "waits to be sent"),
        ((TaskState.RUNNING,), "mecha task cancel"),
        ((TaskState.RUNNING, TaskState.COMPLETED), "POST /task"),
    ],
)
def test_retry_refuses_a_task_that_is_not_failed_or_cancelled(
    store: Store, states: tuple[TaskState, ...], hint: str
) -> None:
    task = moved(store, api_task(store), *states)
    before = steps(store, task)
    with pytest.raises(TaskStateError) as refused:
        Operator(store=store).retry_task(task.id, who=WHO)
    assert "only failed or cancelled tasks can be retried" in refused.value.message
    assert hint in refused.value.hint
    assert steps(store, task) == before
    assert store.get_task(task.id).state is task.state


@pytest.mark.parametrize("states", [(), (TaskState.RUNNING,)])
def test_cancel_a_pending_or_running_task_says_who(
    store: Store, states: tuple[TaskState, ...]
) -> None:
    task = moved(store, api_task(store), *states)
    done = Operator(store=store).cancel_task(task.id, who=WHO)
    assert done.state is TaskState.CANCELLED
    assert steps(store, task)[-1] == (Step.CANCELLED, f"by hand: {WHO}")


@pytest.mark.parametrize(
    ("states", "hint"),
    [
        ((TaskState.RUNNING, TaskState.COMPLETED), "nothing left to cancel"),
        ((TaskState.RUNNING, TaskState.FAILED), "mecha task retry"),
        ((TaskState.CANCELLED,), "mecha task retry"),
    ],
)
def test_cancel_refuses_a_finished_task(
    store: Store, states: tuple[TaskState, ...], hint: str
) -> None:
    task = moved(store, api_task(store), *states)
    before = steps(store, task)
    with pytest.raises(TaskStateError) as refused:
        Operator(store=store).cancel_task(task.id, who=WHO)
    assert "only pending or running tasks can be cancelled" in refused.value.message
    assert hint in refused.value.hint and steps(store, task) == before


def test_an_unknown_task_is_not_found(store: Store) -> None:
    with pytest.raises(TaskNotFound):
        Operator(store=store).retry_task("abcdef0123", who=WHO)
    with pytest.raises(TaskNotFound):
        Operator(store=store).cancel_task("abcdef0123", who=WHO)


# --- writes --------------------------------------------------------------------------


def event_with_writes(store: Store, *states: WriteState) -> tuple[Event, list[Write]]:
    """A stored event with one comment write per state (each key ``w<n>``)."""
    [event] = store.insert_events([delivery("d-writes")])
    assert event is not None
    writes = [Write(key=f"w{i}", worker="alpha", action="comment", place=PLACE, body=f"c{i}")
              for i in range(len(states))]  # fmt: skip
    store.plan_writes([WritePlan(task_id="t1", event_id=event.id, writes=writes)])
    store.update_writes([
        WriteUpdate(key=w.key, state=state, only_from=frozenset({WriteState.PLANNED}))
        for w, state in zip(writes, states, strict=True) if state is not WriteState.PLANNED
    ])  # fmt: skip
    return event, writes


def write_states(store: Store, event: Event) -> dict[str, WriteState]:
    return {w.key: w.state for w in store.list_writes(event_id=event.id)}


def test_retry_writes_reopens_the_failed_and_dead_lettered_ones(store: Store) -> None:
    event, _ = event_with_writes(store, WriteState.DEAD, WriteState.FAILED, WriteState.DONE)
    done = Operator(store=store).retry_writes(event.id[:8], who=WHO)
    assert sorted(w.key for w in done) == ["w0", "w1"]
    assert write_states(store, event) == {
        "w0": WriteState.PLANNED, "w1": WriteState.PLANNED, "w2": WriteState.DONE
    }  # fmt: skip
    retried = [e.detail for e in store.list_timeline(event_id=event.id)
               if e.step == Step.WRITE_RETRY]  # fmt: skip
    assert retried == [f"comment: tried again by hand: {WHO}"] * 2


def test_retry_writes_by_key_reopens_that_one_only(store: Store) -> None:
    event, _ = event_with_writes(store, WriteState.DEAD, WriteState.DEAD)
    [done] = Operator(store=store).retry_writes(event.id, who=WHO, key="w1")
    assert done.key == "w1"
    assert write_states(store, event) == {"w0": WriteState.DEAD, "w1": WriteState.PLANNED}


def test_retry_writes_refusals_change_nothing(store: Store) -> None:
    event, _ = event_with_writes(store, WriteState.DONE, WriteState.DEAD)
    operator = Operator(store=store)
    before = write_states(store, event)
    with pytest.raises(WriteNotFound) as unknown:
        operator.retry_writes(event.id, who=WHO, key="nope")
    assert "no write with key 'nope'" in unknown.value.message and unknown.value.hint
    with pytest.raises(WriteStateError) as done:
        operator.retry_writes(event.id, who=WHO, key="w0")
    assert "is done; only failed or dead-lettered writes" in done.value.message
    with pytest.raises(EventNotFound):
        operator.retry_writes("0123456789abcdef", who=WHO)
    assert write_states(store, event) == before
    operator.retry_writes(event.id, who=WHO)
    with pytest.raises(WriteStateError) as nothing:
        operator.retry_writes(event.id, who=WHO)  # w1 is planned now: nothing left
    assert "has no failed or dead-lettered writes" in nothing.value.message


# --- replays -------------------------------------------------------------------------


def test_a_replay_is_a_new_delivery_matched_by_todays_workers(
    store: Store, user_home: Path
) -> None:
    """The worker that took the event at arrival no longer takes it; another does now."""
    register(store, definition("old"))
    sinks = TaskSink(Journal())

    async def main() -> tuple[Event, Event, Event, Event]:
        async with pipeline_alone(store, user_home, tasks=sinks, events=EventSink(Journal())) as p:
            first = await p.receive(delivery("gh-1", diff="old diff", diff_error=""))
            assert first is not None
            store.add_workers([_record("old", on=("push",))], replace=True)
            store.add_workers([_record("new")])
            store.set_worker_state("new", WorkerState.ONLINE)
            operator = Operator(store=store, pipeline=p)
            again = await operator.replay_event(first.id[:8], who=WHO)
            twice = await operator.replay_event(first.id, who="bob (API, 10.0.0.2)")
            of_replay = await operator.replay_event(again.id, who=WHO)
        return first, again, twice, of_replay

    first, again, twice, of_replay = asyncio.run(main())
    ids = {first.id, again.id, twice.id, of_replay.id}
    assert len(ids) == 4  # a second replay of one event is not dropped as a duplicate
    for made in (again, twice):
        assert re.fullmatch(r"replay-[0-9a-f]{8}:gh-1", made.delivery_id), made.delivery_id
        assert made.raw == first.raw and made.type == first.type and made.actor == "mona"
    assert again.delivery_id != twice.delivery_id
    assert re.fullmatch(r"replay-[0-9a-f]{8}:gh-1", of_replay.delivery_id)
    stored = store.get_event(again.id)
    assert (stored.attrs["replay_of"], stored.attrs["replayed_by"]) == (first.id, WHO)
    assert "diff" not in stored.attrs and "diff_error" not in stored.attrs  # fetched afresh
    assert store.get_event(of_replay.id).attrs["replay_of"] == again.id
    assert [m.worker for m in store.list_matches(first.id) if m.outcome == "matched"] == ["old"]
    for made in (again, twice, of_replay):
        taken = [m.worker for m in store.list_matches(made.id) if m.outcome == "matched"]
        assert taken == ["new"]
        assert [t.worker for t in store.list_tasks(event_id=made.id)] == ["new"]
    timeline = [(e.step, e.detail) for e in store.list_timeline(event_id=again.id)]
    assert (Step.REPLAY, f"replay of {first.id} by {WHO}") in timeline
    assert timeline[0][0] == Step.RECEIVED
    on_first = [e.detail for e in store.list_timeline(event_id=first.id) if e.step == Step.REPLAY]
    assert on_first == [f"replayed as {again.id} by {WHO}",
                        f"replayed as {twice.id} by bob (API, 10.0.0.2)"]  # fmt: skip
    assert sorted(t.event_id for t in sinks.tasks) == sorted(
        [first.id, again.id, twice.id, of_replay.id]
    )


def test_a_replay_needs_the_pipeline_and_a_known_event(store: Store, user_home: Path) -> None:
    [event] = store.insert_events([delivery("gh-2")])
    assert event is not None
    with pytest.raises(UsageError) as refused:
        asyncio.run(Operator(store=store).replay_event(event.id, who=WHO))
    assert "running mecha serve" in refused.value.message
    assert f"POST /event/{event.id}/replay" in refused.value.hint

    async def unknown() -> None:
        async with pipeline_alone(store, user_home, tasks=TaskSink(Journal()),
                                  events=EventSink(Journal())) as pipeline:  # fmt: skip
            await Operator(store=store, pipeline=pipeline).replay_event("fedcba9876", who=WHO)

    with pytest.raises(EventNotFound):
        asyncio.run(unknown())
    assert len(store.list_events(limit=10)) == 1


def _record(name: str, *, on: tuple[str, ...] = ("pull_request.opened",)) -> WorkerRecord:
    from tests.unit.engine.fakes import loaded

    written = definition(name, on=on)
    spec = loaded(written).spec
    assert spec is not None
    return WorkerRecord(name=name, kind=spec.kind, definition={"worker": written, "withheld": []})


# --- workers -------------------------------------------------------------------------


class Control(WorkerControl):
    """Serve's worker control as the operator sees it: start and stop, or a refusal."""

    def __init__(self, store: Store, *, error: MechaError | None = None) -> None:
        self.store = store
        self.error = error
        self.calls: list[tuple[str, str]] = []

    async def start(self, record: WorkerRecord) -> tuple[WorkerRecord, str]:
        self.calls.append(("start", record.name))
        if self.error is not None:
            raise self.error
        return self.store.set_worker_state(record.name, WorkerState.ONLINE), "online"

    async def stop(self, record: WorkerRecord) -> tuple[WorkerRecord, str]:
        self.calls.append(("stop", record.name))
        if self.error is not None:
            raise self.error
        return self.store.set_worker_state(record.name, WorkerState.OFFLINE), "recorded offline"


def own_steps(store: Store, name: str) -> list[tuple[str, str]]:
    return [(e.step, e.detail) for e in store.list_timeline(worker=name)]


def test_start_and_stop_a_worker_say_who(store: Store) -> None:
    register(store, definition("alpha"), online=False)
    control = Control(store)
    operator = Operator(store=store, workers=control)
    started = asyncio.run(operator.start_worker("alpha", who=WHO))
    stopped = asyncio.run(operator.stop_worker("alpha", who=WHO))
    assert (started.state, stopped.state) == (WorkerState.ONLINE, WorkerState.OFFLINE)
    assert control.calls == [("start", "alpha"), ("stop", "alpha")]
    assert own_steps(store, "alpha") == [
        (Step.WORKER_STARTED, f"online; by hand: {WHO}"),
        (Step.WORKER_STOPPED, f"recorded offline; by hand: {WHO}"),
    ]


def test_a_refused_start_records_nothing_and_a_failed_one_says_so(store: Store) -> None:
    register(store, definition("alpha"), online=False)
    refusal = WorkerStateError("worker alpha is online already", hint="stop it first")
    with pytest.raises(WorkerStateError):
        asyncio.run(Operator(store=store, workers=Control(store, error=refusal)).start_worker(
            "alpha", who=WHO))  # fmt: skip
    assert own_steps(store, "alpha") == []
    failure = MechaError("alpha is not started: GET http://x/health got no answer", hint="h")
    with pytest.raises(MechaError):
        asyncio.run(Operator(store=store, workers=Control(store, error=failure)).start_worker(
            "alpha", who=WHO))  # fmt: skip
    assert own_steps(store, "alpha") == [
        (Step.WORKER_STARTED, f"start failed: {failure.message}; by hand: {WHO}")
    ]


def test_an_unknown_worker_and_no_serve_are_refused(store: Store) -> None:
    control = Control(store)
    with pytest.raises(WorkerNotFound):
        asyncio.run(Operator(store=store, workers=control).stop_worker("ghost", who=WHO))
    assert control.calls == []
    register(store, definition("alpha"))
    with pytest.raises(UsageError) as refused:
        asyncio.run(Operator(store=store).stop_worker("alpha", who=WHO))
    assert "mecha worker stop alpha" in refused.value.hint
    assert store.get_worker("alpha").state is WorkerState.ONLINE


def test_a_replay_starts_a_trace_of_its_own() -> None:
    """The original delivery's span context (``traceparent``) is not carried to its replay:
    the replay is a delivery of its own, traced (or not) as it arrives."""
    from mecha.engine.operator import replay_delivery
    from mecha.event import received

    traced = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    original = received(delivery(traceparent=traced), now=1.0)
    replayed = replay_delivery(original, who="alice (mecha event replay)")
    assert "traceparent" not in replayed.attrs
    assert replayed.attrs["replay_of"] == original.id  # the rest of it is kept
    assert replayed.attrs["number"] == original.attrs["number"]
