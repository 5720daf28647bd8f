"""Budgets around a send, on the engine with a fake send: what each way a send ends costs,
estimates, the global budget's defaults, and a ledger that cannot be written sends nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mecha.budget import DEFAULT_PER_TASK, GLOBAL, Budget, Reservation, Verdict, prompt_tokens
from mecha.engine.batcher import Batcher
from mecha.engine.budgets import Budgets
from mecha.engine.targets import Target
from mecha.errors import StoreError
from mecha.result import TaskResult
from mecha.runtimes.contract import WorkerFailure
from mecha.store import Store
from mecha.task import NewTask, Task, TaskState
from mecha.testing.memory_store import MemoryStore
from mecha.timeline import Step
from mecha.worker.kind import WorkerKind, WorkerState
from tests.unit.engine.fakes import Worker, definition, eventually, register, turns
from tests.unit.engine.rig import FAST, Rig
from tests.unit.engine.test_dispatcher import cancel, reach

USED = TaskResult(output="ok", metadata={"input_tokens": 300, "output_tokens": 45})


def api_tasks(store: Store, worker: str, count: int = 1) -> list[Task]:
    return store.create_tasks(
        [NewTask(worker=worker, event_id="", prompt=f"task {i}") for i in range(count)]
    )


def ledger(store: MemoryStore) -> list[tuple[int, int, str]]:
    """(reserved, used, state) of every reservation, in the order made."""
    return [(r["reserved"], r["used"], r["state"]) for r in store.rows("budget_ledger")]


def run(store: Store, home: Path, worker: Worker, check: Any, **dispatch: Any) -> None:
    async def main() -> None:
        settings = dataclasses.replace(FAST, budget_recheck=0.02, **dispatch)
        async with Rig(store, home, send=worker.send, settings=settings) as rig:
            await check(rig)

    asyncio.run(main())


def test_an_answer_settles_at_its_usage(store: MemoryStore, user_home: Path) -> None:
    register(store, definition("w", budget={"tokens_per_day": 10_000, "per_task": 2000}))
    [task] = api_tasks(store, "w")

    async def check(rig: Rig) -> None:
        await reach(store, [task], TaskState.COMPLETED)
        await eventually(lambda: ledger(store) == [(2000, 345, "settled")], "settled at 345")
        stats = rig.dispatcher.stats()
        assert (stats["budget_tokens_reserved"], stats["budget_tokens_used"]) == (2000, 345)

    run(store, user_home, Worker(USED), check)


def test_what_each_failure_costs(store: MemoryStore, user_home: Path) -> None:
    """429 turned the task away: nothing; a 500 without usage: its reservation; a failure
    that reports usage: that usage."""
    register(store, definition("w", max_retries=1, budget={"tasks_per_hour": 10, "per_task": 900}))
    busy, broken, reported = api_tasks(store, "w", 3)
    answers: dict[str, list[TaskResult | WorkerFailure]] = {
        busy.id: [WorkerFailure("busy", transient=True, status=429), TaskResult(output="ok")],
        broken.id: [WorkerFailure("worker answered 500", transient=False, status=500)],
        reported.id: [WorkerFailure("exit 1", transient=False, status=200, result=TaskResult(
            metadata={"exit_code": 1, "usage": {"input_tokens": 70, "output_tokens": 5}}))],
    }  # fmt: skip

    async def send(target: Target, task: Task) -> TaskResult:
        answer = answers[task.id].pop(0)
        if isinstance(answer, WorkerFailure):
            raise answer
        return answer

    async def main() -> None:
        async with Rig(store, user_home, send=send, settings=FAST):
            await reach(store, [busy], TaskState.COMPLETED)
            await reach(store, [broken, reported], TaskState.FAILED)
            await eventually(lambda: len(ledger(store)) == 3, "three settled")

    asyncio.run(main())
    costs = {(r["task_id"], r["attempt"]): (r["used"], r["state"])
             for r in store.rows("budget_ledger")}  # fmt: skip
    assert costs == {
        (busy.id, 2): (900, "settled"),  # its second attempt answered, without usage
        (broken.id, 1): (900, "settled"),
        (reported.id, 1): (75, "settled"),
    }  # the 429'd first attempt of ``busy`` left no row


def test_a_send_cancelled_midway_keeps_its_reservation(store: MemoryStore, user_home: Path) -> None:
    register(store, definition("w", budget={"tokens_per_day": 5000, "per_task": 1000}))
    [task] = api_tasks(store, "w")
    worker = Worker(gated=True)

    async def check(rig: Rig) -> None:
        await eventually(lambda: worker.flying() == 1, "in flight")
        cancel(store, task)
        await eventually(lambda: worker.cancelled == 1, "the send abandoned")
        await eventually(lambda: ledger(store) == [(1000, 1000, "settled")], "kept")

    run(store, user_home, worker, check)


def test_a_worker_without_a_budget_reserves_nothing(store: MemoryStore, user_home: Path) -> None:
    register(store, definition("w"))
    tasks = api_tasks(store, "w", 3)

    async def check(rig: Rig) -> None:
        await reach(store, tasks, TaskState.COMPLETED)

    run(store, user_home, Worker(USED), check)
    assert ledger(store) == []


def test_the_global_budget_reserves_its_per_task_for_workers_without_one(
    store: MemoryStore, user_home: Path
) -> None:
    register(store, definition("w"))
    [task] = api_tasks(store, "w")

    async def check(rig: Rig) -> None:
        await reach(store, [task], TaskState.COMPLETED)
        await eventually(lambda: ledger(store) == [(777, 777, "settled")], "settled")
        [use] = store.budget_use([GLOBAL], now=task.created_at + 1)
        assert use.tokens_used == 777

    global_budget = Budget(tokens_per_day=10_000, per_task=777)
    run(store, user_home, Worker(TaskResult(output="no usage")), check, budget=global_budget)


def test_budget_wait_zero_fails_a_task_over_budget_at_once(
    store: MemoryStore, user_home: Path
) -> None:
    register(store, definition("w", budget={"tasks_per_hour": 1, "budget_wait": 0}))
    first, second = api_tasks(store, "w", 2)

    async def check(rig: Rig) -> None:
        await reach(store, [first], TaskState.COMPLETED)
        [failed] = await reach(store, [second], TaskState.FAILED)
        assert failed.error.startswith("over worker w's budget: tasks_per_hour 1, 1 task used")
        assert failed.error.endswith("; budget_wait is 0s: a task over budget fails at once")
        steps = [e.step for e in store.list_timeline(task_id=second.id)]
        assert steps == [Step.CREATED, Step.FAILED]
        assert store.rows("budget_waits") == []

    run(store, user_home, Worker(), check)


class Unwritable(MemoryStore):
    """A store whose budget ledger cannot be written (a full disk, a lost server)."""

    def reserve_budget(self, reservations: Sequence[Reservation], *, now: float) -> list[Verdict]:
        raise StoreError("the ledger cannot be written", hint="free some disk")


def test_a_ledger_that_cannot_be_written_sends_nothing(user_home: Path) -> None:
    store = Unwritable()
    register(store, definition("w", budget={"tasks_per_hour": 100}))
    [task] = api_tasks(store, "w")
    worker = Worker()

    async def check(rig: Rig) -> None:
        await turns(200)
        await rig.dispatcher._poll_once()  # picked up again: still refused
        assert store.get_task(task.id).state is TaskState.PENDING

    run(store, user_home, worker, check)
    assert worker.sent == []
    store.close()


def target(**fields: Any) -> Target:
    return Target(name="w", kind=WorkerKind.ADAPTER, state=WorkerState.ONLINE, **fields)


def test_estimates_and_the_budgets_a_send_must_fit(store: MemoryStore) -> None:
    task = Task(id="t", worker="w", event_id="", dedup_key="k", prompt="é" * 10)
    everyone = Budget(tasks_per_hour=50, per_task=3000, budget_wait=60)
    budgets = bare(store, budget=everyone)
    # an adapter: the prompt's tokens (20 bytes of UTF-8, 3 a token) and its max_tokens
    assert prompt_tokens(task.prompt) == 7
    assert budgets.estimate(target(max_output=1024), task) == 1031
    # a worker whose use is not known: its per_task, else the global one, else the default
    assert budgets.estimate(target(budget=Budget(per_task=10)), task) == 10
    assert budgets.estimate(target(), task) == 3000
    assert bare(store).estimate(target(), task) == DEFAULT_PER_TASK
    limits = budgets.limits(target(budget=Budget(tokens_per_day=9)))
    assert [(b.scope, b.tokens_per_day, b.tasks_per_hour) for b in limits] == [
        ("w", 9, 0), (GLOBAL, 0, 50)
    ]  # fmt: skip
    # a budget: section without limits limits nothing
    assert bare(store).limits(target(budget=Budget(per_task=5))) == ()


def bare(store: Store, **fields: Any) -> Budgets:
    """Budgets to ask for estimates and limits only (it sends and updates nothing)."""
    with ThreadPoolExecutor(1) as writer:
        return Budgets(store=store, updates=Batcher(store.update_tasks, executor=writer),
                       writer=writer, **fields)  # fmt: skip
