"""Budgets around a send: reserve before the claim, settle after the answer (``mecha.budget``).

``TaskSender.attempt`` asks ``book`` before it claims a task whose worker has a budget (or
when config.yml has a global one). The store reserves the estimate in one transaction
(``Store.reserve_budget``); granted, the send goes, and ``settle`` records what it cost
once it is over, whatever happened:

- an answer (or a failure) that reports usage costs that usage;
- one that reports none keeps its reservation as its cost (a send cancelled midway, or
  that timed out, may well have used it);
- a send that never reached the worker (the claim was lost or held back, or the worker
  turned it away with 401, 403, 429 or 503 before doing anything) costs nothing.

Refused, the task stays pending: its timeline says once which budget holds it, how much is
used and when the window frees (``Step.WAITING``), ``next_retry_at`` is set to then, and
the dispatcher queues it again at that time (a ``Retry`` with a delay, never a spin). While
tasks of the refusing budget are in flight, it looks again every ``recheck`` seconds, as
one of them may settle below its estimate. Past ``budget_wait`` the task fails, saying why.
A store that cannot reserve sends nothing (the dispatcher logs it; the task stays pending).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from mecha.budget import (
    DEFAULT_BUDGET_WAIT,
    DEFAULT_PER_TASK,
    GLOBAL,
    TOKENS,
    Budget,
    BudgetLimit,
    Reservation,
    Settlement,
    Verdict,
    prompt_tokens,
    shown_limits,
    usage_of,
)
from mecha.duration import format_duration
from mecha.engine.batcher import Batcher
from mecha.engine.targets import Target
from mecha.errors import MechaError
from mecha.event import timestamp
from mecha.result import TaskResult
from mecha.runtimes.contract import WorkerFailure
from mecha.store import Store, TaskUpdate
from mecha.task import Task, TaskState
from mecha.timeline import Step

log = logging.getLogger(__name__)

Send = Callable[[Target, Task], Awaitable[TaskResult]]
_PENDING = frozenset({TaskState.PENDING})
#: statuses with which a worker turns a task away before doing anything
TURNED_AWAY = frozenset({401, 403, 429, 503})
#: seconds between two looks at a budget whose tasks in flight may settle lower
DEFAULT_RECHECK = 5.0


@dataclass(slots=True)
class Booking:
    """One attempt's reservation, and what its send came to (``settle`` records it)."""

    reservation: Reservation
    #: its id in the ledger
    ticket: str
    #: the send started (the claim was won)
    sent: bool = False
    #: the tokens its answer reported (None: none)
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class OverBudget:
    """A task its budget refused: it waits ``delay`` seconds as ``task``; or None: it
    failed, or is not there to send (cancelled, or another node is claiming it)."""

    task: Task | None
    delay: float = 0.0


class Budgets:
    """Reserves before sends, settles after them, and holds or fails tasks over budget."""

    def __init__(
        self,
        *,
        store: Store,
        updates: Batcher[TaskUpdate, Task | None],
        writer: Executor,
        budget: Budget | None = None,
        recheck: float = DEFAULT_RECHECK,
    ) -> None:
        self._store = store
        self._updates = updates
        self._writer = writer
        #: config.yml's budget: all workers together
        self.budget = budget
        self._recheck = recheck
        self._open: dict[str, Booking] = {}
        #: reservations and settlements of concurrent sends share a commit (started on
        #: first use, closed by ``close``)
        self._reserves: Batcher[Reservation, Verdict] = Batcher(
            self._reserve_now, executor=writer, name="budget-reserves"
        )
        self._settles: Batcher[Settlement, None] = Batcher(
            self._settle_all, executor=writer, name="budget-settles"
        )
        self._started = False
        #: tasks this node holds back on a budget now
        self._waiting: set[str] = set()
        self.counts = dict.fromkeys(
            (
                "tasks_budget_waits",
                "tasks_budget_failed",
                "budget_tokens_reserved",
                "budget_tokens_used",
            ),
            0,
        )

    def _reserve_now(self, reservations: Sequence[Reservation]) -> list[Verdict]:
        return self._store.reserve_budget(reservations, now=time.time())

    def _settle_all(self, settlements: Sequence[Settlement]) -> list[None]:
        self._store.settle_budget(settlements)
        return [None] * len(settlements)

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._reserves.start()
            self._settles.start()

    async def close(self) -> None:
        """Write the reservations and settlements queued, then stop (at the drain's end)."""
        if self._started:
            await self._reserves.close()
            await self._settles.close()

    def stats(self) -> dict[str, int]:
        """Figures for /health and /metrics."""
        return {"tasks_budget_waiting": len(self._waiting), **self.counts}

    def shown(self, targets: Mapping[str, Target]) -> dict[str, BudgetLimit]:
        """The budgets the API shows, by scope (``mecha.budget.shown_limits``)."""
        return shown_limits({n: t.budget for n, t in targets.items()}, self.budget)

    def limits(self, target: Target) -> tuple[BudgetLimit, ...]:
        """The budgets a send of ``target`` must fit: its own, the global one (none: free)."""
        found = []
        if target.budget is not None and target.budget.limited:
            found.append(target.budget.limit(target.name))
        if self.budget is not None and self.budget.limited:
            found.append(self.budget.limit(GLOBAL))
        return tuple(found)

    def _knob(self, target: Target, name: str, default: float) -> float:
        for budget in (target.budget, self.budget):
            value = getattr(budget, name) if budget is not None else None
            if value is not None:
                return float(value)
        return default

    def estimate(self, target: Target, task: Task) -> int:
        """Tokens to reserve: the prompt's and the model's most output, when Mecha calls the
        model (an adapter); else ``per_task``."""
        if target.max_output:
            return prompt_tokens(task.prompt) + target.max_output
        return int(self._knob(target, "per_task", DEFAULT_PER_TASK))

    def metered(self, send: Send) -> Send:
        """``send``, noting for each booked attempt that it went and what it used."""

        async def sent(target: Target, task: Task) -> TaskResult:
            booking = self._open.get(task.id)
            if booking is None:
                return await send(target, task)
            booking.sent = True
            try:
                result = await send(target, task)
            except WorkerFailure as failure:
                found = failure.result
                booking.tokens = usage_of(found.metadata) if found is not None else None
                if booking.tokens is None and failure.status in TURNED_AWAY:
                    booking.sent = False
                raise
            booking.tokens = usage_of(result.metadata)
            return result

        return sent

    async def book(self, target: Target, task: Task) -> Booking | OverBudget:
        """Reserve the attempt's estimate; over budget, the task waits (or fails)."""
        reservation = Reservation(
            task_id=task.id, worker=task.worker, tokens=self.estimate(target, task),
            limits=self.limits(target),
        )  # fmt: skip
        self._start()
        verdict = await self._reserves.add(reservation)
        now = time.time()
        if verdict.taken:  # not pending any more, or another node is claiming it
            self._waiting.discard(task.id)
            return OverBudget(None)
        if not verdict.granted:
            return await self._over(target, task, verdict, now)
        self._waiting.discard(task.id)
        self.counts["budget_tokens_reserved"] += reservation.tokens
        booking = Booking(reservation, verdict.ticket)
        self._open[task.id] = booking
        return booking

    async def settle(self, booking: Booking) -> None:
        """Record what the attempt cost (never raises: a failure is logged, and the
        reservation then stands as its cost)."""
        held = booking.reservation
        self._open.pop(held.task_id, None)
        settlement = Settlement(
            ticket=booking.ticket, task_id=held.task_id, tokens=booking.tokens, sent=booking.sent
        )
        try:
            await self._settles.add(settlement)
        except (MechaError, RuntimeError) as exc:  # RuntimeError: closing
            log.error("task %s: settling its budget failed: %s", held.task_id, exc)
            return
        if booking.sent:
            cost = held.tokens if booking.tokens is None else booking.tokens
            self.counts["budget_tokens_used"] += cost

    async def _over(self, target: Target, task: Task, verdict: Verdict, now: float) -> OverBudget:
        wait = self._knob(target, "budget_wait", DEFAULT_BUDGET_WAIT)
        deadline = verdict.waiting_since + wait
        reason = verdict.reason()
        if now >= deadline:
            waited = _for(now - verdict.waiting_since)
            why = (
                f"it waited {waited} (budget_wait {_for(wait)})"
                if wait
                else ("budget_wait is 0s: a task over budget fails at once")
            )
            return await self._fail(task, f"{reason}; {why}")
        frees = verdict.frees_at - now if verdict.frees_at > now else self._recheck
        settling = verdict.kind == TOKENS and verdict.in_flight > 0
        delay = min(frees, self._recheck if settling else frees, deadline - now)
        when = f"the window frees at {timestamp(verdict.frees_at)}" if verdict.frees_at else ""
        again = "; looks again as they settle" if settling else ""
        detail = (
            f"{reason}; {when or 'waiting'}{again}; fails after budget_wait {_for(wait)} "
            f"({timestamp(deadline)})"
        )
        stored = await self._updates.add(
            TaskUpdate(
                task_id=task.id, state=TaskState.PENDING, only_from=_PENDING,
                next_retry_at=now + delay, step=Step.WAITING if verdict.new_wait else "",
                detail=detail,
            )
        )  # fmt: skip
        if stored is None:  # cancelled (or taken) meanwhile
            self._waiting.discard(task.id)
            return OverBudget(None)
        if verdict.new_wait:
            self.counts["tasks_budget_waits"] += 1
            log.info("task %s for %s waits: %s", task.id, task.worker, detail)
        self._waiting.add(task.id)
        return OverBudget(stored, delay)

    async def _fail(self, task: Task, why: str) -> OverBudget:
        self._waiting.discard(task.id)
        failed = await self._updates.add(
            TaskUpdate(task_id=task.id, state=TaskState.FAILED, only_from=_PENDING, error=why,
                       step=Step.FAILED, detail=why)
        )  # fmt: skip
        if failed is not None:
            self.counts["tasks_budget_failed"] += 1
            log.warning("task %s for %s failed: %s", task.id, task.worker, why)
        await self._settles.add(Settlement(ticket="", task_id=task.id, sent=False))  # its wait ends
        return OverBudget(None)


def _for(seconds: float) -> str:
    """A wait in words: whole seconds, or milliseconds under one."""
    seconds = max(0.0, seconds)
    return format_duration(round(seconds) if seconds >= 1 else round(seconds, 3))
