"""Running tasks' progress, on every store: the claim's timeout, token counts, and the
writer that takes counts from the adapters (at once, then at most once a second per task)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from mecha.engine.progress import ProgressWriter
from mecha.runtimes.token_counts import TokenCounts
from mecha.store import TaskUpdate
from mecha.task import NewTask, Task, TaskState
from tests.integration.store.stores import AnyStore

PENDING = frozenset({TaskState.PENDING})
RUNNING = frozenset({TaskState.RUNNING})


def claimed(store: AnyStore, timeout: float = 120.0) -> Task:
    [task] = store.create_tasks([NewTask(worker="w", event_id="", prompt="p")])
    [running] = store.update_tasks([
        TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING,
                   start_attempt=True, timeout=timeout)
    ])  # fmt: skip
    assert running is not None
    return running


def test_a_claim_records_the_attempts_timeout(store: AnyStore) -> None:
    task = claimed(store, timeout=90.0)
    assert task.timeout == 90.0 and task.tokens == 0
    assert store.get_task(task.id).timeout == 90.0
    [fresh] = store.create_tasks([NewTask(worker="w", event_id="", prompt="p")])
    assert fresh.timeout == 0.0  # not sent yet: no time limit known


def test_token_counts_are_recorded_for_running_tasks_only(store: AnyStore) -> None:
    running = claimed(store)
    [pending] = store.create_tasks([NewTask(worker="w", event_id="", prompt="p")])
    store.set_task_tokens([(running.id, 42), (pending.id, 7), ("no-such-task", 3)])
    assert store.get_task(running.id).tokens == 42
    assert store.get_task(pending.id).tokens == 0


def test_a_new_attempt_starts_counting_again(store: AnyStore) -> None:
    task = claimed(store)
    store.set_task_tokens([(task.id, 42)])
    back = TaskUpdate(task_id=task.id, state=TaskState.PENDING, only_from=RUNNING)
    again = TaskUpdate(task_id=task.id, state=TaskState.PENDING, only_from=PENDING)
    store.update_tasks([back, again])
    [retried] = store.update_tasks([
        TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING,
                   start_attempt=True, timeout=60.0)
    ])  # fmt: skip
    assert retried is not None
    assert retried.attempts == 2 and retried.tokens == 0 and retried.timeout == 60.0


def test_the_writer_writes_a_first_count_at_once_then_at_most_once_a_second(
    store: AnyStore,
) -> None:
    one, two = claimed(store), claimed(store)
    counts = TokenCounts()

    async def run() -> list[tuple[int, int]]:
        seen: list[tuple[int, int]] = []
        with ThreadPoolExecutor(1) as writer:
            progress = ProgressWriter(store, writer=writer, counts=counts, interval=1.0, tick=3600)
            progress.start()

            async def step(now: float) -> None:
                await progress.flush(now=now)  # written once it returns
                seen.append((store.get_task(one.id).tokens, store.get_task(two.id).tokens))

            report_one, report_two = counts.reporter(one.id), counts.reporter(two.id)
            report_one(3)
            await step(100.0)  # one's first count: written at once
            report_one(5)
            report_two(1)
            await step(100.5)  # one was written half a second ago: held; two is new
            await step(100.9)  # one still held
            await step(101.0)  # a second after: one's latest count
            counts.finish(one.id)
            report_two(9)
            await step(102.0)
            await progress.close()
        return seen

    assert asyncio.run(run()) == [(3, 0), (3, 1), (3, 1), (5, 1), (5, 9)]
