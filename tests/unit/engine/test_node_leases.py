"""Two nodes (two dispatchers) on one store: a node that starts leaves a live node's running
task alone, and takes it over once that node stops renewing its lease."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from mecha.store import Store, TaskUpdate
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import Step
from tests.unit.engine.fakes import Worker, definition, eventually, register
from tests.unit.engine.rig import FAST, Rig

#: a short lease (renewed every 0.1 s); the store is swept every 20 ms
LEASED = dataclasses.replace(FAST, lease=0.3)


def test_a_second_node_takes_a_running_task_only_once_its_node_stops_heartbeating(
    store: Store, user_home: Path
) -> None:
    register(store, definition("w"))
    [task] = store.create_tasks([NewTask(worker="w", event_id="", prompt="slow")])
    slow = Worker(gated=True)  # node A's send hangs until the test opens its gate
    quick = Worker()

    async def main() -> None:
        async with Rig(store, user_home, send=slow.send, settings=LEASED) as a:
            await eventually(lambda: slow.flying() == 1, "node A sends the task")
            claimed = store.get_task(task.id)
            node_a = a.dispatcher.leases.node.id
            async with Rig(store, user_home, send=quick.send, settings=LEASED) as b:
                assert b.dispatcher.leases.node.id != node_a
                # A renews its lease while B sweeps: wait until the first lease would have
                # ended twice over, then for three more sweeps of B
                await eventually(
                    lambda: _heartbeat(store, node_a) > claimed.dispatched_at + 2 * LEASED.lease,
                    "node A's heartbeat outlives its first lease twice",
                )
                sweeps = b.dispatcher.leases.sweeps
                await eventually(lambda: b.dispatcher.leases.sweeps >= sweeps + 3, "B swept")
                assert store.get_task(task.id).state is TaskState.RUNNING
                assert quick.sent == [] and b.dispatcher.counts["recovered"] == 0
                assert {n.id: n.in_flight for n in store.list_nodes()}[node_a] == 1

                await a.dispatcher.leases.stop_heartbeat()  # node A hangs
                done = await eventually(
                    lambda: _in(store, task.id, TaskState.COMPLETED),
                    "node B takes the task over and completes it",
                )
                assert done.attempts == 2 and len(quick.sent) == 1
                assert b.dispatcher.counts["recovered"] == 1
                steps = [e.step for e in store.list_timeline(task_id=task.id)]
                assert steps == [Step.CREATED, Step.DISPATCHED, Step.REQUEUED, Step.DISPATCHED,
                                 Step.COMPLETED]  # fmt: skip
            slow.gate.set()  # A's late answer finds the task completed: it changes nothing
            await eventually(lambda: a.dispatcher.in_flight() == 0, "A's send ended")
        assert store.get_task(task.id).result == done.result

    asyncio.run(main())


def test_a_node_stopping_cleanly_is_recorded_stopped(store: Store, user_home: Path) -> None:
    register(store, definition("w"))

    async def main() -> None:
        async with Rig(store, user_home, send=Worker().send, settings=LEASED) as a:
            node = a.dispatcher.leases.node.id
            [seen] = store.list_nodes()
            assert seen.id == node and seen.stopped_at == 0
        [seen] = store.list_nodes()
        assert seen.stopped_at > 0

    asyncio.run(main())


def test_a_serve_owning_its_database_takes_back_every_running_task_at_start(
    store: Store, user_home: Path
) -> None:
    """SQLite: one serve owns the file, so a task found running is no live node's."""
    register(store, definition("w"))
    [task] = store.create_tasks([NewTask(worker="w", event_id="", prompt="left running")])
    claim = TaskUpdate(
        task_id=task.id, state=TaskState.RUNNING, only_from=frozenset({TaskState.PENDING}),
        start_attempt=True, node="gone-1-abcd", lease=3600,
    )  # fmt: skip
    store.update_tasks([claim])  # its lease has an hour to run
    worker = Worker()
    owning = dataclasses.replace(LEASED, own_database=True)

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send, settings=owning) as rig:
            await eventually(lambda: _in(store, task.id, TaskState.COMPLETED), "sent again")
        assert rig.dispatcher.counts["recovered"] == 1

    asyncio.run(main())
    assert len(worker.sent) == 1


def test_a_shared_database_keeps_a_live_lease_at_start(store: Store, user_home: Path) -> None:
    register(store, definition("w"))
    [task] = store.create_tasks([NewTask(worker="w", event_id="", prompt="another node's")])
    claim = TaskUpdate(
        task_id=task.id, state=TaskState.RUNNING, only_from=frozenset({TaskState.PENDING}),
        start_attempt=True, node="live-1-abcd", lease=3600,
    )  # fmt: skip
    store.update_tasks([claim])
    worker = Worker()

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send, settings=LEASED) as rig:
            sweeps = rig.dispatcher.leases.sweeps
            await eventually(lambda: rig.dispatcher.leases.sweeps >= sweeps + 3, "swept")
            assert store.get_task(task.id).state is TaskState.RUNNING
        assert rig.dispatcher.counts["recovered"] == 0

    asyncio.run(main())
    assert worker.sent == []


def _in(store: Store, task_id: str, state: TaskState) -> Task | None:
    task = store.get_task(task_id)
    return task if task.state is state else None


def _heartbeat(store: Store, node_id: str) -> float:
    return {n.id: n.heartbeat_at for n in store.list_nodes()}[node_id]
