"""One attempt at a task: claim it, send it, record the answer or the failure.

The dispatcher owns the lanes and what is in flight; ``TaskSender.attempt`` owns what one
send does. The claim is a guarded update (pending → running), so a `mecha task cancel`
made meanwhile wins and nothing is sent. An answer is settled by write-back (its writes
recorded, synced, before the task is completed); a failure becomes a retry (the task
waits, still the dispatcher's) or a failed task.

A task under ``flow:`` control whose key got a newer task while it ran (it is *marked*)
ends ``superseded`` when its worker answers or fails: nothing of its answer is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace

from mecha.engine import tracing
from mecha.engine.batcher import Batcher
from mecha.engine.budgets import Budgets, OverBudget
from mecha.engine.histogram import Histogram
from mecha.engine.targets import Target
from mecha.engine.task_outcome import after_failure, completed
from mecha.engine.worker_figures import WorkerFigures
from mecha.engine.writeback import Settled, WriteBack
from mecha.result import TaskResult
from mecha.result_cap import DEFAULT_MAX_RESULT
from mecha.runtimes.contract import WorkerFailure
from mecha.store import TaskUpdate, WorkerLimits
from mecha.task import Task, TaskState
from mecha.timeline import Step

log = logging.getLogger(__name__)

#: sends one task to the worker it names; raises WorkerFailure
Send = Callable[[Target, Task], Awaitable[TaskResult]]

_PENDING = frozenset({TaskState.PENDING})
_RUNNING = frozenset({TaskState.RUNNING})
DROPPED = (
    "a newer task for its flow key replaced it while it ran: the worker's answer is dropped, "
    "nothing is written"
)


@dataclass(frozen=True, slots=True)
class Retry:
    """A task that waits ``delay`` seconds before it is queued again."""

    task: Task
    delay: float
    #: not sent: its worker's limits across nodes held the claim back; it goes again when
    #: another node's task may have ended (a notification, the next poll, one of ours)
    held: bool = False


class TaskSender:
    """Claims, sends and settles tasks; counts what happened."""

    def __init__(
        self,
        *,
        updates: Batcher[TaskUpdate, Task | None],
        send: Send,
        writeback: WriteBack | None,
        retry_base: float,
        retry_cap: float,
        counts: MutableMapping[str, int],
        latency: Histogram,
        unreachable: Callable[[Target], None],
        max_result: int = DEFAULT_MAX_RESULT,
        node: str = "",
        lease: float = 0.0,
        shared: bool = False,
        budgets: Budgets | None = None,
        by_worker: WorkerFigures | None = None,
    ) -> None:
        self._updates = updates
        #: the same counts and latencies by worker (/metrics)
        self._by_worker = by_worker if by_worker is not None else WorkerFigures()
        #: reserves before a claim and settles after the send (``engine.budgets``)
        self._budgets = budgets
        self._send = budgets.metered(send) if budgets is not None else send
        self._writeback = writeback
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._counts = counts
        self._latency = latency
        #: told when a worker did not answer at all (its health is checked soon)
        self._unreachable = unreachable
        #: the most bytes of a result the store keeps (the policy sees all of it)
        self._max_result = max_result
        #: the node a claim is recorded for, and how long its lease holds
        self._node = node
        self._lease = lease
        #: other nodes send from the same database: each claim checks the worker's limits
        #: across all of them (one serve alone keeps them in its lanes)
        self._shared = shared
        #: tasks whose answer is in and being settled: a cancel arriving now is seen by the
        #: guarded completion, which drops the result and abandons its writes
        self.settling: set[str] = set()

    async def attempt(self, target: Target, task: Task) -> Retry | None:
        """Send ``task`` once; a Retry if it waits to go again, else None (done with it).

        Traced as one ``mecha.task`` span (in its delivery's trace, from the task's
        ``traceparent``) holding the ``mecha.send`` and ``mecha.policy`` spans."""
        parent = task.context.get(tracing.TRACEPARENT, "")
        with tracing.tracer.span("mecha.task", parent=parent) as span:
            span.set("mecha.task.id", task.id)
            span.set("mecha.worker", task.worker)
            span.set("mecha.event.id", task.event_id)
            retry = await self._booked(target, task)
            span.set("mecha.task.retry", retry is not None)
            return retry

    async def _booked(self, target: Target, task: Task) -> Retry | None:
        if self._budgets is None or not self._budgets.limits(target):
            return await self._attempt(target, task)
        booked = await self._budgets.book(target, task)
        if isinstance(booked, OverBudget):  # it waits for its budget's window, or failed
            return Retry(booked.task, booked.delay) if booked.task is not None else None
        try:
            return await self._attempt(target, task)
        finally:
            await self._budgets.settle(booked)

    async def _attempt(self, target: Target, task: Task) -> Retry | None:
        where = f"{target.endpoint or 'a fresh container'} (definition {target.definition})"
        claimed = await self._updates.add(
            TaskUpdate(
                task_id=task.id, state=TaskState.RUNNING, only_from=_PENDING,
                start_attempt=True, timeout=target.timeout, step=Step.DISPATCHED,
                detail=f"attempt {task.attempts + 1} to {where}", node=self._node,
                lease=self._lease, limits=self._limits(target), keyed=bool(task.flow_key),
            )
        )  # fmt: skip
        if claimed is None:  # cancelled, or handled elsewhere meanwhile
            return None
        if claimed.state is TaskState.SUPERSEDED:  # a newer task for its flow key came
            self._count(claimed, "superseded")
            return None
        if claimed.state is TaskState.PENDING:  # its worker is at its limits on other nodes
            self._count(claimed, "held")
            return Retry(claimed, 0.0, held=True)
        self._count(claimed, "sent")
        if self._writeback is not None:  # 👀 on a command's comment, in the background
            self._writeback.acknowledge(claimed)
        ready = max(claimed.created_at, claimed.next_retry_at)
        waited = max(0.0, (claimed.dispatched_at - ready) * 1000)
        self._latency.observe(waited)
        self._by_worker.observe(claimed.worker, waited)
        try:
            with tracing.tracer.span("mecha.send") as span:
                span.set("mecha.task.attempt", claimed.attempts)
                result = await self._send(target, claimed)
        except WorkerFailure as failure:
            return await self._failed(target, claimed, failure)
        self.settling.add(claimed.id)
        try:
            await self._completed(claimed, result)
        finally:
            self.settling.discard(claimed.id)
        return None

    async def _superseded(self, task: Task) -> bool:
        """End a keyed task a newer one for its key marked while it ran (True), else False."""
        if not task.flow_key:
            return False
        ended = await self._updates.add(
            TaskUpdate(task_id=task.id, state=TaskState.SUPERSEDED, only_from=_RUNNING,
                       step=Step.SUPERSEDED, detail=DROPPED, node=self._node)
        )  # fmt: skip
        if ended is None:
            return False
        log.info("task %s was superseded by task %s while it ran; its answer is dropped",
                 task.id, ended.superseded_by)  # fmt: skip
        self._count(task, "superseded")
        return True

    def _count(self, task: Task, outcome: str, times: int = 1) -> None:
        """Add to an outcome's count, in all and for the task's worker."""
        self._counts[outcome] += times
        self._by_worker.count(task.worker, outcome, times)

    def _limits(self, target: Target) -> WorkerLimits | None:
        if not self._shared:
            return None
        return WorkerLimits(concurrency=target.concurrency, rate=target.rate, burst=target.burst)

    async def _completed(self, task: Task, result: TaskResult) -> None:
        if await self._superseded(task):
            return  # a newer task for its flow key replaced it: nothing is written
        # the writes are recorded (synced) before the task is completed: a crash between
        # the two sends the task again, and its writes are planned under the same keys
        settled = await self._writeback.settle(task, result) if self._writeback else Settled()
        update = replace(
            completed(task, result, max_result=self._max_result), plan=settled.quiet,
            node=self._node,
        )  # fmt: skip
        writes = settled.records
        if await self._updates.add(update) is None:
            await self._superseded(task)  # marked since the check above, perhaps
            log.info("task %s was cancelled (or taken over by another node) while it ran; "
                     "its result is dropped", task.id)  # fmt: skip
            if self._writeback and writes:
                await self._writeback.abandon(
                    writes, "the task was cancelled (or taken over by another node) while it ran"
                )
        else:
            self._count(task, "completed")
            if log.isEnabledFor(logging.DEBUG):  # not at INFO: one line per task costs sends
                took = max(0.0, time.time() - task.dispatched_at)
                log.debug("task %s for %s completed in %.2f s; %d writes to make",
                          task.id, task.worker, took, len(writes))  # fmt: skip
            if self._writeback and writes:
                self._writeback.launch(writes)

    async def _failed(self, target: Target, task: Task, failure: WorkerFailure) -> Retry | None:
        """Record a failed send; a Retry if the task waits for another attempt."""
        if failure.status == 0 and failure.transient:
            self._unreachable(target)
        then = after_failure(
            task, failure, max_retries=target.max_retries, now=time.time(),
            retry_base=self._retry_base, retry_cap=self._retry_cap, max_result=self._max_result,
        )  # fmt: skip
        stored = await self._updates.add(replace(then.update, node=self._node))
        if stored is None and await self._superseded(task):
            return None
        if then.retry_in is None:
            log.warning("task %s for %s failed: %s", task.id, target.name, then.update.error)
            self._count(task, "failed")
            self._count(task, "dead_lettered", then.dead_letter)
            return None
        if stored is None:  # cancelled meanwhile
            return None
        self._count(task, "retried")
        log.info("task %s for %s: %s", task.id, target.name, then.update.detail)
        return Retry(stored, then.retry_in)
