"""Budgets in memory, as ``mecha.store.budget_sql`` keeps them in SQL: ``BudgetMixin``.

The same rules (``mecha.budget``): rows past the day's window dropped at each reservation,
an open row in flight while its attempt is on its way, one wait per task. Each call is
one transaction under the store's lock, so reservations take turns.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

from mecha.budget import (
    CLAIM_WITHIN,
    DAY,
    GLOBAL,
    HOUR,
    TASKS,
    TOKENS,
    BudgetUse,
    Reservation,
    Settlement,
    Spent,
    Totals,
    Verdict,
    judge,
    refused_scope,
)
from mecha.store.common import new_id
from mecha.task import TaskState
from mecha.testing.memory.tables import LedgerRow, Tables, WaitRow


class BudgetMixin:
    """MemoryStore's budget methods; the class provides ``_write`` and ``_use``."""

    def _write(self, doing: str) -> contextlib.AbstractContextManager[Tables]:
        raise NotImplementedError

    def _use(self, doing: str) -> contextlib.AbstractContextManager[Tables]:
        raise NotImplementedError

    def reserve_budget(self, reservations: Sequence[Reservation], *, now: float) -> list[Verdict]:
        """Reserve each in turn in its budgets, or refuse it and record the wait."""
        if not reservations:
            return []
        with self._write("reserving tasks' budgets") as tables:
            for key, row in list(tables.budget_ledger.items()):
                if row.at <= now - DAY:
                    del tables.budget_ledger[key]
            return [_reserve(tables, reservation, now) for reservation in reservations]

    def settle_budget(self, settlements: Sequence[Settlement]) -> None:
        """Settle reserved attempts at their use, their reservation, or nothing."""
        if not settlements:
            return
        with self._write("settling a task's budget") as tables:
            for done in settlements:
                key = done.ticket
                row = tables.budget_ledger.get(key)
                if not done.sent:
                    tables.budget_ledger.pop(key, None)
                elif row is not None and row.state == "open":
                    used = row.reserved if done.tokens is None else done.tokens
                    tables.budget_ledger[key] = dataclasses.replace(row, used=used, state="settled")
                tables.budget_waits.pop(done.task_id, None)

    def budget_use(self, scopes: Sequence[str], *, now: float) -> list[BudgetUse]:
        """Each scope's use in its windows."""
        with self._use("reading budget use") as tables:
            return [_use(tables, scope, now) for scope in scopes]


def _window(tables: Tables, scope: str, start: float) -> Iterator[LedgerRow]:
    """The scope's rows reserved after ``start``, oldest first (ties in the order made)."""
    rows = [row for row in tables.budget_ledger.values()
            if row.at > start and scope in (GLOBAL, row.worker)]  # fmt: skip
    yield from sorted(rows, key=lambda row: row.at)


def _cost(row: LedgerRow) -> int:
    return row.reserved if row.state == "open" else row.used


def _live(tables: Tables, row: LedgerRow, now: float) -> bool:
    task = tables.tasks.get(row.task_id)
    if row.state != "open" or task is None:
        return False
    claiming = task.state is TaskState.PENDING and task.attempts == row.attempt - 1
    return (claiming and row.at > now - CLAIM_WITHIN) or (
        task.state is TaskState.RUNNING and task.attempts == row.attempt
    )


def _totals(tables: Tables, scope: str, now: float) -> Totals:
    rows = list(_window(tables, scope, now - DAY))
    return Totals(
        tokens=sum(map(_cost, rows)), tasks=sum(1 for row in rows if row.at > now - HOUR),
        in_flight=sum(_live(tables, row, now) for row in rows),
    )  # fmt: skip


def _next_attempt(tables: Tables, task_id: str, now: float) -> int | None:
    """As ``budget_sql``: None if the task is not pending or its attempt is being claimed."""
    task = tables.tasks.get(task_id)
    if task is None or task.state is not TaskState.PENDING:
        return None
    attempt = task.attempts + 1
    claiming = any(
        row.task_id == task_id and row.attempt == attempt and row.state == "open"
        and row.at > now - CLAIM_WITHIN
        for row in tables.budget_ledger.values()
    )  # fmt: skip
    return None if claiming else attempt


def _reserve(tables: Tables, reservation: Reservation, now: float) -> Verdict:
    task_id = reservation.task_id
    attempt = _next_attempt(tables, task_id, now)
    if attempt is None:
        return Verdict(granted=False, taken=True)
    totals = {limit.scope: _totals(tables, limit.scope, now) for limit in reservation.limits}
    scope, kind = refused_scope(reservation, totals)
    if not scope and not kind:
        ticket = new_id()
        tables.budget_ledger[ticket] = LedgerRow(
            id=ticket, task_id=task_id, attempt=attempt, worker=reservation.worker, at=now,
            reserved=reservation.tokens,
        )  # fmt: skip
        tables.budget_waits.pop(task_id, None)
        return Verdict(granted=True, ticket=ticket)
    start = now - (DAY if kind == TOKENS else HOUR)
    found = [Spent(row.at, _cost(row), _live(tables, row, now))
             for row in _window(tables, scope, start)]  # fmt: skip
    verdict = judge(reservation, totals, {scope: found})
    known = tables.budget_waits.get(task_id)
    since = known.since if known is not None else now
    new = known is None or (known.scope, known.kind) != (verdict.scope, verdict.kind)
    if new:
        tables.budget_waits[task_id] = WaitRow(
            task_id=task_id, worker=reservation.worker, scope=verdict.scope, kind=verdict.kind,
            since=since,
        )  # fmt: skip
    return dataclasses.replace(verdict, waiting_since=since, new_wait=new)


def _use(tables: Tables, scope: str, now: float) -> BudgetUse:
    rows = list(_window(tables, scope, now - DAY))
    hour = [row for row in rows if row.at > now - HOUR]
    waiting = [
        wait.kind for wait in tables.budget_waits.values()
        if wait.scope == scope and (task := tables.tasks.get(wait.task_id)) is not None
        and task.state is TaskState.PENDING
    ]  # fmt: skip
    return BudgetUse(
        scope=scope, tokens_used=sum(r.used for r in rows if r.state == "settled"),
        tokens_reserved=sum(r.reserved for r in rows if r.state == "open"),
        tasks_used=sum(1 for r in hour if r.state == "settled"),
        tasks_reserved=sum(1 for r in hour if r.state == "open"),
        in_flight=sum(_live(tables, row, now) for row in rows),
        tokens_waiting=waiting.count(TOKENS), tasks_waiting=waiting.count(TASKS),
        day_oldest=rows[0].at if rows else 0.0, hour_oldest=hour[0].at if hour else 0.0,
    )  # fmt: skip
