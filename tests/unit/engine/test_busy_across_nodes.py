"""A worker busy on another node of a shared database stays busy: a node with nothing of
it in flight does not flip it back to online at each poll."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mecha.store import Store, TaskUpdate
from mecha.task import NewTask, TaskState
from mecha.worker.kind import WorkerState
from tests.unit.engine.fakes import Worker, definition, eventually, register
from tests.unit.engine.rig import Rig


def test_a_worker_running_a_task_on_another_node_stays_busy(store: Store, user_home: Path) -> None:
    register(store, definition("w"))
    [task] = store.create_tasks([NewTask(worker="w", event_id="", prompt="p")])
    # another node claimed it (its lease holds: this node's sweep leaves it alone)
    store.update_tasks([TaskUpdate(
        task_id=task.id, state=TaskState.RUNNING, only_from=frozenset({TaskState.PENDING}),
        start_attempt=True, node="node-elsewhere", lease=3600,
    )])  # fmt: skip
    store.set_worker_state("w", WorkerState.BUSY)

    async def main() -> None:
        async with Rig(store, user_home, send=Worker().send) as rig:
            polls = rig.dispatcher.leases.sweeps
            await eventually(lambda: rig.dispatcher.leases.sweeps >= polls + 5, "five polls")
            assert store.get_worker("w").state is WorkerState.BUSY
            store.update_tasks([TaskUpdate(
                task_id=task.id, state=TaskState.COMPLETED,
                only_from=frozenset({TaskState.RUNNING}),
            )])  # fmt: skip
            await eventually(
                lambda: store.get_worker("w").state is WorkerState.ONLINE,
                "online once no node runs its tasks",
            )

    asyncio.run(main())
