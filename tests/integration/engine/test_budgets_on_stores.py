"""Budgets through the real dispatcher to a real HTTP worker on 127.0.0.1 (issue 17), on a
SQLite file and on PostgreSQL (there with two nodes sending from the same database).

Fifty tasks are made at once for a worker whose budget holds ten: ten reach the worker, the
others stay pending with the reason on their timeline. The worker answers through the
worker contract (``InstantWorker``), sent with the lean client serve sends with.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mecha.budget import GLOBAL, Budget
from mecha.engine.dispatcher import DispatchSettings
from mecha.engine.targets import Target
from mecha.result import TaskResult
from mecha.runtimes.endpoint import send_task
from mecha.runtimes.http1 import Pool
from mecha.store import Store
from mecha.task import NewTask, Task, TaskState
from mecha.testing.instant_worker import InstantWorker
from mecha.timeline import Step
from tests.integration.engine.conftest import Database
from tests.unit.engine.fakes import definition, eventually, register
from tests.unit.engine.rig import Rig

#: a task over a budget whose tasks in flight may settle lower looks again this often
RECHECK = 0.05


def settings(database: Database, **budget: Any) -> DispatchSettings:
    return dataclasses.replace(database.settings(), budget_recheck=RECHECK, **budget)


def http_send(pool: Pool) -> Any:
    async def send(target: Target, task: Task) -> TaskResult:
        return await send_task(
            pool, target.endpoint, task_id=task.id, prompt=task.prompt, context=task.context,
            api_key=target.api_key, timeout=target.timeout,
        )  # fmt: skip

    return send


def budgeted(name: str, url: str, **budget: Any) -> dict[str, Any]:
    return definition(name, endpoint=url, concurrency=50, budget=budget)


def api_tasks(store: Store, worker: str, count: int) -> list[Task]:
    return store.create_tasks(
        [NewTask(worker=worker, event_id="", prompt=f"task {i}") for i in range(count)]
    )


@contextlib.asynccontextmanager
async def nodes(
    database: Database, home: Path, pool: Pool, dispatch: DispatchSettings
) -> AsyncIterator[list[Rig]]:
    """The engine sending: one node on SQLite, two on PostgreSQL (each its own store); the
    client's connections are closed on the way out, whatever happened."""
    stores = [database.store] if database.kind == "sqlite" else [database.store, database.another()]
    try:
        async with contextlib.AsyncExitStack() as stack:
            rigs = [
                await stack.enter_async_context(
                    Rig(s, home, send=http_send(pool), settings=dispatch)
                )
                for s in stores
            ]
            yield rigs
    finally:
        await pool.close()
        for extra in stores[1:]:
            extra.close()


def waits(store: Store, task: Task) -> list[str]:
    return [e.detail for e in store.list_timeline(task_id=task.id) if e.step == Step.WAITING]


async def settle_into(
    store: Store, tasks: list[Task], *, completed: int, waiting: int
) -> tuple[list[Task], list[Task]]:
    """(completed, pending) once ``completed`` tasks are done and ``waiting`` others wait on
    the budget with their reason on the timeline."""

    def read() -> tuple[list[Task], list[Task]] | None:
        now = [store.get_task(t.id) for t in tasks]
        done = [t for t in now if t.state is TaskState.COMPLETED]
        pending = [t for t in now if t.state is TaskState.PENDING and waits(store, t)]
        return (done, pending) if (len(done), len(pending)) == (completed, waiting) else None

    return await eventually(read, f"{completed} completed and {waiting} waiting")


def test_fifty_tasks_against_tasks_per_hour_ten_send_ten(database: Database, home: Path) -> None:
    store = database.store
    with InstantWorker() as worker:
        register(store, budgeted("w", worker.url, tasks_per_hour=10))
        made = api_tasks(store, "w", 50)
        pool = Pool()

        async def main() -> None:
            async with nodes(database, home, pool, settings(database)) as rigs:
                _, pending = await settle_into(store, made, completed=10, waiting=40)
                await database.polls()  # the store is read again: nothing more goes
                assert worker.received == 10
                for waiting in pending:
                    task = store.get_task(waiting.id)  # as it stands now, its wait recorded
                    [why] = waits(store, task)
                    assert why.startswith(
                        "over worker w's budget: tasks_per_hour 10, 10 tasks used in the last "
                        "hour; the window frees at "
                    ), why
                    assert "fails after budget_wait 24h" in why
                    assert task.next_retry_at > task.created_at + 3000  # waits for the hour
                stats = [rig.dispatcher.stats() for rig in rigs]
                assert sum(s["tasks_budget_waits"] for s in stats) == 40  # one wait each
                # each node counts the tasks it holds back (both may have tried one)
                assert all(s["tasks_budget_waiting"] <= 40 for s in stats)
                assert max(s["tasks_budget_waiting"] for s in stats) >= 20
                [use] = store.budget_use(["w"], now=made[0].created_at + 60)
                assert (use.tasks_used, use.tasks_reserved, use.tasks_waiting) == (10, 0, 40)

        asyncio.run(main())
        assert len({r.id for r in worker.requests}) == 10


def test_fifty_tasks_against_tokens_for_ten_send_ten(database: Database, home: Path) -> None:
    """No usage in the answers: each keeps its reservation (per_task) as its cost."""
    store = database.store
    with InstantWorker() as worker:
        worker.set(delay=0.05)  # several are in flight together
        register(store, budgeted("w", worker.url, tokens_per_day=10_000, per_task=1000))
        made = api_tasks(store, "w", 50)
        pool = Pool()

        async def main() -> None:
            async with nodes(database, home, pool, settings(database)):
                _, pending = await settle_into(store, made, completed=10, waiting=40)
                await database.polls()
                assert worker.received == 10
                for task in pending:
                    [why] = waits(store, task)
                    assert re.match(
                        r"over worker w's budget: tokens_per_day 10000, 10000 tokens used in the "
                        r"last 24 hours(, \d+ in flight)?; this task needs 1000; ",
                        why,
                    ), why
                [use] = store.budget_use(["w"], now=made[0].created_at + 60)
                assert (use.tokens_used, use.tokens_reserved, use.tasks_used) == (10_000, 0, 10)

        asyncio.run(main())


def test_usage_settles_each_reservation_and_a_small_budget_is_never_stuck(
    database: Database, home: Path
) -> None:
    """Each task reserves 1000 (its per_task) of a budget of 1000 and uses 100: one at a
    time, each going once the one before settled (nothing in flight, something left), ten
    in all; without settling only one would."""
    store = database.store
    usage = {"output": "ok", "metadata": {"exit_code": 0, "usage": {
        "prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100}}}  # fmt: skip
    with InstantWorker() as worker:
        worker.set(result=usage)
        register(store, budgeted("w", worker.url, tokens_per_day=1000, per_task=1000))
        made = api_tasks(store, "w", 50)
        pool = Pool()

        async def main() -> None:
            async with nodes(database, home, pool, settings(database)):
                await settle_into(store, made, completed=10, waiting=40)
                await database.polls()
                assert worker.received == 10 and worker.max_in_flight == 1
                [use] = store.budget_use(["w"], now=made[0].created_at + 60)
                assert (use.tokens_used, use.tokens_reserved, use.in_flight) == (1000, 0, 0)

        asyncio.run(main())


def test_a_task_fails_once_it_has_waited_its_budget_wait(database: Database, home: Path) -> None:
    store = database.store
    with InstantWorker() as worker:
        register(store, budgeted("w", worker.url, tasks_per_hour=1, budget_wait="300ms"))
        first, second = api_tasks(store, "w", 2)
        pool = Pool()

        async def main() -> None:
            async with nodes(database, home, pool, settings(database)) as rigs:
                failed = await eventually(
                    lambda: [t for t in (store.get_task(first.id), store.get_task(second.id))
                             if t.state is TaskState.FAILED], "one failed",
                )  # fmt: skip
                await eventually(
                    lambda: sum(r.dispatcher.stats()["tasks_budget_failed"] for r in rigs) == 1,
                    "counted",
                )
            [task] = failed
            assert task.error.startswith("over worker w's budget: tasks_per_hour 1, 1 task used")
            assert "(budget_wait 300ms)" in task.error and task.attempts == 0
            steps = [e.step for e in store.list_timeline(task_id=task.id)]
            assert steps == [Step.CREATED, Step.WAITING, Step.FAILED]

        asyncio.run(main())
        assert worker.received == 1


def test_the_global_budget_caps_all_workers_together(database: Database, home: Path) -> None:
    store = database.store
    with InstantWorker() as worker:
        register(store, budgeted("a", worker.url), budgeted("b", worker.url, tasks_per_hour=50))
        made = api_tasks(store, "a", 5) + api_tasks(store, "b", 5)
        pool = Pool()
        dispatch = settings(database, budget=Budget(tasks_per_hour=4))

        async def main() -> None:
            async with nodes(database, home, pool, dispatch):
                _, pending = await settle_into(store, made, completed=4, waiting=6)
                await database.polls()
                assert worker.received == 4
                assert all("over the global budget (config.yml): tasks_per_hour 4" in
                           waits(store, t)[0] for t in pending)  # fmt: skip
                uses = {
                    u.scope: u
                    for u in store.budget_use(["a", "b", GLOBAL], now=made[0].created_at + 60)
                }
                assert uses[GLOBAL].tasks_used == 4 and uses[GLOBAL].tasks_waiting == 6
                assert uses["a"].tasks_used + uses["b"].tasks_used == 4

        asyncio.run(main())
