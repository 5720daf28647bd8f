"""Budgets in PostgreSQL: ``BudgetMixin`` gives PostgresStore the budget ledger's methods.

The statements and rules are ``mecha.store.budget_sql``'s, shared with SQLite. Nodes
reserve at once on their own connections, so each reservation first takes a transaction
advisory lock per budget it touches (the worker's, and the global one), in key order:
reservations of one budget take turns across every node and each sees the ones before
it, as the claim limits do (``mecha.store.postgres.tasks``). Commits are unsynced, as task
updates are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mecha.budget import BudgetUse, Reservation, Settlement, Verdict
from mecha.store import budget_sql
from mecha.store.postgres.parts import Conn, PostgresParts

#: the first key of the advisory locks that make one budget's reservations take turns
_BUDGET_LOCK = 0x6D656362


def _runner(conn: Conn) -> budget_sql.Run:
    def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = conn.execute(budget_sql.mark(sql).encode(), tuple(params))  # constant SQL
        if not sql.startswith("SELECT"):  # pipelined: only a query's rows are waited for
            return []
        return [tuple(row) for row in cursor.fetchall()]

    return run


class BudgetMixin(PostgresParts):
    """PostgresStore's budget methods; the class provides ``_write`` and ``_use``."""

    def reserve_budget(self, reservations: Sequence[Reservation], *, now: float) -> list[Verdict]:
        """Reserve each in turn in its budgets, or refuse it and record the wait."""
        if not reservations:
            return []
        scopes = sorted({limit.scope for r in reservations for limit in r.limits})
        with self._write("reserving tasks' budgets", synced=False) as conn:
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, k) FROM (SELECT DISTINCT hashtext(s) AS k "
                "FROM unnest(%s::text[]) AS s ORDER BY k) AS keys",
                (_BUDGET_LOCK, scopes),
            ).fetchall()
            return budget_sql.reserve(_runner(conn), reservations, now)

    def settle_budget(self, settlements: Sequence[Settlement]) -> None:
        """Settle reserved attempts at their use, their reservation, or nothing."""
        if not settlements:
            return
        with self._write("settling a task's budget", synced=False) as conn:
            budget_sql.settle(_runner(conn), settlements)

    def budget_use(self, scopes: Sequence[str], *, now: float) -> list[BudgetUse]:
        """Each scope's use in its windows."""
        with self._use("reading budget use") as conn:
            return budget_sql.use(_runner(conn), scopes, now)
