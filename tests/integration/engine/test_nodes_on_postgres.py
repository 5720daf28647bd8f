"""Two engines (two nodes) on one PostgreSQL database, each on its own connections: a
worker's ``concurrency`` holds across both, and a task one node ends or makes wakes the
other at once through LISTEN/NOTIFY (their polls are an hour apart here, so nothing else
could wake them)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

from mecha.engine.dispatcher import HELD_DETAIL
from mecha.store.postgres.listen import Listener
from mecha.store.postgres.store import PostgresStore, open_postgres
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import Step
from tests.unit.engine.fakes import Worker, definition, eventually, register
from tests.unit.engine.rig import FAST, Rig

#: no poll between the first and the drain: only nudges pick tasks up
SLEEPY = dataclasses.replace(FAST, poll_interval=3600.0)


@contextlib.asynccontextmanager
async def node(url: str, home: Path, worker: Worker) -> AsyncIterator[tuple[Rig, Listener]]:
    """One node: its own store (pool), the engine over it, and its listener."""
    store = open_postgres(url)
    try:
        async with Rig(store, home, send=worker.send, settings=SLEEPY) as rig:
            listener = Listener(store.server, rig.dispatcher.nudge_threadsafe)
            listener.start()
            try:
                assert await asyncio.to_thread(listener.listening.wait, 60)
                yield rig, listener
            finally:
                await asyncio.to_thread(listener.close)
    finally:
        store.close()


def api_tasks(store: PostgresStore, worker: str, count: int) -> list[Task]:
    return store.create_tasks(
        [NewTask(worker=worker, event_id="", prompt=f"task {n}") for n in range(count)]
    )


def test_a_workers_concurrency_holds_across_nodes_and_notifications_wake_them(
    pg_url: str, tmp_path: Path
) -> None:
    admin = open_postgres(pg_url)
    register(admin, definition("one", concurrency=1), definition("two", concurrency=2))
    worker = Worker(gated=True)

    async def main() -> None:
        async with (
            node(pg_url, tmp_path, worker) as (a, heard_a),
            node(pg_url, tmp_path, worker) as (b, heard_b),
        ):
            # made after both started (their only poll): a notification brings them in
            ones = api_tasks(admin, "one", 4)
            twos = api_tasks(admin, "two", 4)
            await eventually(lambda: worker.flying() == 3, "one + two tasks in flight")
            await eventually(
                lambda: a.dispatcher.counts["held"] + b.dispatcher.counts["held"] >= 1,
                "a claim held back by a worker's limit on the other node",
            )
            for _ in range(7):  # let them out one at a time: each end wakes the nodes
                worker.gate.set()
                worker.gate.clear()
                await asyncio.sleep(0)
            worker.gate.set()

            def all_done() -> list[Task] | None:
                now = [admin.get_task(t.id) for t in ones + twos]
                return now if all(t.state is TaskState.COMPLETED for t in now) else None

            done = await eventually(all_done, "all 8 tasks completed", deadline=120)
            assert heard_a.count >= 1 and heard_b.count >= 1
            assert a.dispatcher.counts["sent"] + b.dispatcher.counts["sent"] == 8
            assert all(t.attempts == 1 for t in done)  # a held claim is no attempt
        assert worker.most == {"one": 1, "two": 2}  # never more, whichever node sent

    try:
        asyncio.run(main())
        notes = [e.detail for t in admin.list_tasks(limit=100)
                 for e in admin.list_timeline(task_id=t.id) if e.step == Step.WAITING]  # fmt: skip
        assert HELD_DETAIL in notes
    finally:
        admin.close()
