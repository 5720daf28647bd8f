"""Budgets in SQLite: ``BudgetMixin`` gives SqliteStore the budget ledger's three methods.

The statements and rules are ``mecha.store.budget_sql``'s, shared with PostgreSQL. A
reservation runs in one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock makes
reservations take turns, so two tasks never both take the last of a budget. Commits are
not synced (as task updates are): a power cut may forget the last reservations, and the
tasks they paid for are then sent again and reserve again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from mecha.budget import BudgetUse, Reservation, Settlement, Verdict
from mecha.store import budget_sql
from mecha.store.sqlite.parts import SqliteParts


def _runner(conn: sqlite3.Connection) -> budget_sql.Run:
    def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]

    return run


class BudgetMixin(SqliteParts):
    """SqliteStore's budget methods; the class provides ``_write`` and ``_use``."""

    def reserve_budget(self, reservations: Sequence[Reservation], *, now: float) -> list[Verdict]:
        """Reserve each in turn in its budgets, or refuse it and record the wait."""
        if not reservations:
            return []
        with self._write("reserving tasks' budgets", synced=False) as conn:
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
