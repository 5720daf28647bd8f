"""The dispatcher over a real store, around a fake send: claims, answers, retries, dead
letters, cancels, drains and per-worker concurrency (no worker process, no HTTP)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from mecha.result import TaskResult
from mecha.runtimes.contract import WorkerFailure
from mecha.store import Store, TaskUpdate
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import Step
from mecha.worker.kind import WorkerState
from tests.unit.engine.fakes import Worker, definition, eventually, register, transient, turns
from tests.unit.engine.rig import FAST, Rig


def api_tasks(store: Store, worker: str, count: int = 1) -> list[Task]:
    """``count`` pending tasks for ``worker``, as the tasks API stores them."""
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


def cancel(store: Store, task: Task) -> None:
    """`mecha task cancel`, from another process: a guarded update in the store."""
    update = TaskUpdate(
        task_id=task.id, state=TaskState.CANCELLED, step=Step.CANCELLED, detail="by hand",
        only_from=frozenset({TaskState.PENDING, TaskState.RUNNING}),
    )  # fmt: skip
    assert store.update_tasks([update]) != [None]


def test_a_pending_task_is_claimed_sent_and_completed_with_the_answer(
    store: Store, user_home: Path
) -> None:
    register(store, definition("w"))
    [task] = api_tasks(store, "w")
    worker = Worker(TaskResult(output="looks fine"))

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            [done] = await reach(store, [task], TaskState.COMPLETED)
            assert done.result["output"] == "looks fine"
            assert (done.attempts, done.error) == (1, "")
        # counted once its send is over (drained): the store may show it a moment before
        assert rig.dispatcher.counts["sent"] == rig.dispatcher.counts["completed"] == 1

    asyncio.run(main())
    [sent] = worker.sent
    assert (sent.id, sent.prompt, sent.state, sent.attempts) == (
        task.id, "task 0", TaskState.RUNNING, 1,
    )  # fmt: skip
    assert worker.targets[0].name == "w"
    assert worker.targets[0].endpoint == "http://127.0.0.1:9/"
    assert steps(store, task) == [Step.CREATED, Step.DISPATCHED, Step.COMPLETED]


def test_tasks_submitted_while_it_runs_are_sent(store: Store, user_home: Path) -> None:
    """The pipeline's way in: submit_threadsafe from the store's writer thread."""
    register(store, definition("w"))
    worker = Worker()

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            tasks = api_tasks(store, "w", 3)
            await asyncio.get_running_loop().run_in_executor(
                rig.writer, rig.dispatcher.submit_threadsafe, tasks
            )
            await reach(store, tasks, TaskState.COMPLETED)

    asyncio.run(main())
    assert sorted(t.prompt for t in worker.sent) == ["task 0", "task 1", "task 2"]


def test_a_transient_failure_is_sent_again_after_its_delay(store: Store, user_home: Path) -> None:
    register(store, definition("w"))
    [task] = api_tasks(store, "w")
    worker = Worker(transient("503: busy"), TaskResult(output="second time lucky"))

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            [done] = await reach(store, [task], TaskState.COMPLETED)
            assert done.result["output"] == "second time lucky"
            assert done.attempts == 2
        assert rig.dispatcher.counts["retried"] == 1
        assert rig.dispatcher.counts["failed"] == 0

    asyncio.run(main())
    assert [t.attempts for t in worker.sent] == [1, 2]
    assert worker.started[1] - worker.started[0] >= FAST.retry_base * 0.9  # not before it
    assert steps(store, task) == [
        Step.CREATED, Step.DISPATCHED, Step.RETRY, Step.DISPATCHED, Step.COMPLETED,
    ]  # fmt: skip
    [retry] = [e for e in store.list_timeline(task_id=task.id) if e.step == Step.RETRY]
    assert retry.detail == "503: busy; attempt 2 of 4 in 20ms"  # max_retries 3: 4 tries


def test_after_its_retries_a_task_is_dead_lettered(store: Store, user_home: Path) -> None:
    register(store, definition("w", max_retries=2))
    [task] = api_tasks(store, "w")
    worker = Worker(transient("503: still busy"))

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            [failed] = await reach(store, [task], TaskState.FAILED)
            assert failed.attempts == 3
            assert failed.error == "dead-letter after 3 attempts: 503: still busy"
        counts = rig.dispatcher.counts
        assert (counts["retried"], counts["failed"], counts["dead_lettered"]) == (2, 1, 1)

    asyncio.run(main())
    assert len(worker.sent) == 3
    assert steps(store, task).count(Step.RETRY) == 2
    assert steps(store, task)[-1] == Step.FAILED


def test_a_permanent_failure_fails_the_task_at_once_keeping_the_answer(
    store: Store, user_home: Path
) -> None:
    register(store, definition("w"))
    [task] = api_tasks(store, "w")
    said = TaskResult(output="", error="cannot parse the prompt")
    worker = Worker(WorkerFailure("400: bad task", transient=False, status=400, result=said))

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            [failed] = await reach(store, [task], TaskState.FAILED)
            assert (failed.attempts, failed.error) == (1, "400: bad task")
            assert failed.result["error"] == "cannot parse the prompt"
        assert (rig.dispatcher.counts["failed"], rig.dispatcher.counts["dead_lettered"]) == (1, 0)

    asyncio.run(main())
    assert len(worker.sent) == 1


def test_a_task_cancelled_before_it_is_claimed_is_not_sent(store: Store, user_home: Path) -> None:
    """The claim is guarded (pending → running): a cancel made meanwhile wins."""
    register(store, definition("w"))
    [stale] = api_tasks(store, "w")
    cancel(store, stale)
    worker = Worker()

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            rig.dispatcher.submit([stale])  # the dispatcher still believes it pending
            await eventually(
                lambda: (
                    rig.updates.items >= 1
                    and rig.dispatcher.queued() == 0
                    and rig.dispatcher.in_flight() == 0
                ),
                "the claim was tried",
            )
            assert rig.dispatcher.counts["sent"] == 0

    asyncio.run(main())
    assert worker.sent == []
    assert store.get_task(stale.id).state is TaskState.CANCELLED
    assert Step.DISPATCHED not in steps(store, stale)


def test_a_task_cancelled_while_it_runs_is_abandoned(store: Store, user_home: Path) -> None:
    register(store, definition("w"))
    [task] = api_tasks(store, "w")
    worker = Worker(gated=True)

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            await eventually(lambda: worker.flying() == 1, "the send started")
            cancel(store, task)
            await eventually(lambda: worker.cancelled == 1, "the send was abandoned")
            await eventually(lambda: rig.dispatcher.in_flight() == 0, "nothing in flight")
        assert rig.dispatcher.counts["completed"] == 0

    asyncio.run(main())
    assert store.get_task(task.id).state is TaskState.CANCELLED
    assert Step.COMPLETED not in steps(store, task)


def test_drain_waits_for_the_tasks_in_flight(store: Store, user_home: Path) -> None:
    register(store, definition("w"))
    [task] = api_tasks(store, "w")
    worker = Worker(TaskResult(output="finished during the drain"), gated=True)

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            await eventually(lambda: worker.flying() == 1, "the send started")
            drain = asyncio.get_running_loop().create_task(rig.dispatcher.drain())
            await turns()
            assert not drain.done()  # it waits for the worker
            worker.gate.set()
            assert await drain == 0  # nothing left to requeue
            assert store.get_task(task.id).state is TaskState.COMPLETED

    asyncio.run(main())
    assert worker.cancelled == 0


def test_drain_past_its_timeout_requeues_what_is_left(store: Store, user_home: Path) -> None:
    register(store, definition("w"))
    [task] = api_tasks(store, "w")
    worker = Worker(gated=True)

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            await eventually(lambda: worker.flying() == 1, "the send started")
            assert await rig.dispatcher.drain(timeout=0.01) == 1

    asyncio.run(main())
    assert worker.cancelled == 1
    requeued = store.get_task(task.id)
    assert (requeued.state, requeued.attempts) == (TaskState.PENDING, 1)
    assert steps(store, task)[-1] == Step.REQUEUED


def test_each_worker_runs_at_most_its_concurrency_at_once(store: Store, user_home: Path) -> None:
    register(store, definition("pair", concurrency=2), definition("solo"))
    tasks = api_tasks(store, "pair", 5) + api_tasks(store, "solo", 3)
    worker = Worker(gated=True)

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            await eventually(lambda: worker.flying() >= 3, "3 in flight")
            assert worker.in_flight == {"pair": 2, "solo": 1}
            running = [t for t in tasks if store.get_task(t.id).state is TaskState.RUNNING]
            assert (len(running), rig.dispatcher.queued()) == (3, 5)
            worker.gate.set()
            await reach(store, tasks, TaskState.COMPLETED)

    asyncio.run(main())
    assert worker.most == {"pair": 2, "solo": 1}
    assert len(worker.sent) == 8


def test_the_global_limit_bounds_every_worker_together_taking_turns(
    store: Store, user_home: Path
) -> None:
    names = ("a", "b", "c")
    register(store, *(definition(n, concurrency=4) for n in names))
    tasks = [t for n in names for t in api_tasks(store, n, 3)]
    worker = Worker(gated=True)
    two = dataclasses.replace(FAST, concurrency=2)

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send, settings=two):
            await eventually(lambda: worker.flying() == 2, "2 in flight")
            assert len({t.worker for t in worker.sent}) == 2  # two workers, not one twice
            worker.gate.set()
            await reach(store, tasks, TaskState.COMPLETED)

    asyncio.run(main())
    assert worker.peak == 2
    assert len(worker.sent) == 9


def test_tasks_of_an_offline_worker_wait_then_go_once_it_is_online(
    store: Store, user_home: Path
) -> None:
    register(store, definition("w"), online=False)
    [task] = api_tasks(store, "w")
    worker = Worker()

    def waiting() -> list[str]:
        return [e.detail for e in store.list_timeline(task_id=task.id) if e.step == Step.WAITING]

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send):
            [why] = await eventually(waiting, "the task says why it waits")
            assert why == "worker is offline; start it with `mecha worker start w`"
            assert worker.sent == []
            store.set_worker_state("w", WorkerState.ONLINE)  # `mecha worker start`
            await reach(store, [task], TaskState.COMPLETED)

    asyncio.run(main())
    assert len(worker.sent) == 1


def test_a_task_left_running_by_a_crash_is_sent_again_at_start(
    store: Store, user_home: Path
) -> None:
    register(store, definition("w"))
    [task] = api_tasks(store, "w")
    claim = TaskUpdate(
        task_id=task.id, state=TaskState.RUNNING, only_from=frozenset({TaskState.PENDING}),
        start_attempt=True,
    )  # fmt: skip
    store.update_tasks([claim])  # the process died while its worker worked
    worker = Worker()

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            [done] = await reach(store, [task], TaskState.COMPLETED)
            assert done.attempts == 2
        assert rig.dispatcher.counts["recovered"] == 1

    asyncio.run(main())
    assert len(worker.sent) == 1
