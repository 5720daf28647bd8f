"""The budget ledger in SQL, one text for SQLite and PostgreSQL (``mecha.budget``'s rules).

Tables (migration 9): ``budget_ledger``, a row per reserved attempt (task id, attempt,
worker, when, tokens reserved, tokens used, ``open`` or ``settled``), and ``budget_waits``,
a row per task refused (since when, on which budget). Statements are written with
SQLite's ``?`` marks; ``mark`` turns them into PostgreSQL's ``%s``. Each function takes
``run`` (a statement and its parameters → the rows it answered) on a connection inside
the caller's transaction; the caller serialises reservations (SQLite's write lock,
PostgreSQL's advisory lock per budget).

An open row is *in flight* while its attempt is still on its way: its task pending with
one attempt fewer (reserved, not yet claimed) or running that attempt. A row left open by
a node that died (its task taken back) is no longer in flight but keeps its reservation
as its cost until it leaves the window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mecha.budget import (
    DAY,
    HOUR,
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

#: a statement and its parameters → the rows it answered ([] for one that answers none)
Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

_COST = "CASE WHEN b.state = 'open' THEN b.reserved ELSE b.used END"
_LIVE = (
    "(b.state = 'open' AND ((t.state = 'pending' AND t.attempts = b.attempt - 1) "
    "OR (t.state = 'running' AND t.attempts = b.attempt)))"
)
_FROM = "FROM budget_ledger AS b LEFT JOIN tasks AS t ON t.id = b.task_id"
#: one scope's rows in the day window (a worker's, or all for the global scope)
_WHERE = "WHERE b.at > ? AND (? = '' OR b.worker = ?)"
_TOTALS = (
    f"SELECT coalesce(sum({_COST}), 0), count(CASE WHEN b.at > ? THEN 1 END), "  # noqa: S608
    f"count(CASE WHEN {_LIVE} THEN 1 END) {_FROM} {_WHERE}"
)
_ROWS = (
    f"SELECT b.at, {_COST}, CASE WHEN {_LIVE} THEN 1 ELSE 0 END {_FROM} {_WHERE} "  # noqa: S608
    "ORDER BY b.at"
)
_USE = (
    "SELECT coalesce(sum(CASE WHEN b.state = 'settled' THEN b.used ELSE 0 END), 0), "  # noqa: S608
    "coalesce(sum(CASE WHEN b.state = 'open' THEN b.reserved ELSE 0 END), 0), "
    "count(CASE WHEN b.at > ? AND b.state = 'settled' THEN 1 END), "
    "count(CASE WHEN b.at > ? AND b.state = 'open' THEN 1 END), "
    f"count(CASE WHEN {_LIVE} THEN 1 END), min(b.at), min(CASE WHEN b.at > ? THEN b.at END) "
    f"{_FROM} {_WHERE}"
)
_WAITING = (
    "SELECT count(*) FROM budget_waits AS w JOIN tasks AS t ON t.id = w.task_id "
    "AND t.state = 'pending' WHERE w.scope = ?"
)


def mark(sql: str) -> str:
    """``sql`` with PostgreSQL's parameter marks."""
    return sql.replace("?", "%s")


def reserve(run: Run, reservation: Reservation, now: float) -> Verdict:
    """Reserve in every budget of ``reservation`` or in none; a refusal records the wait."""
    run("DELETE FROM budget_ledger WHERE at <= ?", (now - DAY,))
    totals = {limit.scope: _totals(run, limit.scope, now) for limit in reservation.limits}
    scope, kind = refused_scope(reservation, totals)
    if not scope and not kind:
        run(
            "DELETE FROM budget_ledger WHERE task_id = ? AND attempt = ?",
            (reservation.task_id, reservation.attempt),
        )
        run(
            "INSERT INTO budget_ledger (task_id, attempt, worker, at, reserved, used, state) "
            "VALUES (?, ?, ?, ?, ?, 0, 'open')",
            (reservation.task_id, reservation.attempt, reservation.worker, now,
             reservation.tokens),
        )  # fmt: skip
        run("DELETE FROM budget_waits WHERE task_id = ?", (reservation.task_id,))
        return Verdict(granted=True)
    start = now - (DAY if kind == TOKENS else HOUR)
    found = [Spent(at, int(cost), bool(live))
             for at, cost, live in run(_ROWS, (start, scope, scope))]  # fmt: skip
    verdict = judge(reservation, totals, {scope: found})
    return _waiting(run, reservation, verdict, now)


def _totals(run: Run, scope: str, now: float) -> Totals:
    [(tokens, tasks, flying)] = run(_TOTALS, (now - HOUR, now - DAY, scope, scope))
    return Totals(tokens=int(tokens), tasks=int(tasks), in_flight=int(flying))


def _waiting(run: Run, reservation: Reservation, verdict: Verdict, now: float) -> Verdict:
    """Record (or keep) the task's wait; the verdict with since when it waits."""
    task_id = reservation.task_id
    rows = run("SELECT scope, kind, since FROM budget_waits WHERE task_id = ?", (task_id,))
    since = float(rows[0][2]) if rows else now
    new = not rows or (rows[0][0], rows[0][1]) != (verdict.scope, verdict.kind)
    if new:
        run("DELETE FROM budget_waits WHERE task_id = ?", (task_id,))
        run(
            "INSERT INTO budget_waits (task_id, worker, scope, kind, since) "
            "VALUES (?, ?, ?, ?, ?)",
            (task_id, reservation.worker, verdict.scope, verdict.kind, since),
        )
    return Verdict(
        granted=False, scope=verdict.scope, kind=verdict.kind, used=verdict.used,
        limit=verdict.limit, asked=verdict.asked, in_flight=verdict.in_flight,
        frees_at=verdict.frees_at, waiting_since=since, new_wait=new,
    )  # fmt: skip


def settle(run: Run, settlements: Sequence[Settlement]) -> None:
    """Each attempt's cost: its use, its reservation (no use known), or nothing (not sent).
    The task's wait, if one was recorded, ends too."""
    for done in settlements:
        key = (done.task_id, done.attempt)
        if not done.sent:
            run("DELETE FROM budget_ledger WHERE task_id = ? AND attempt = ?", key)
        elif done.tokens is None:
            run(
                "UPDATE budget_ledger SET used = reserved, state = 'settled' "
                "WHERE task_id = ? AND attempt = ? AND state = 'open'",
                key,
            )
        else:
            run(
                "UPDATE budget_ledger SET used = ?, state = 'settled' "
                "WHERE task_id = ? AND attempt = ? AND state = 'open'",
                (done.tokens, *key),
            )
        run("DELETE FROM budget_waits WHERE task_id = ?", (done.task_id,))


def use(run: Run, scopes: Sequence[str], now: float) -> list[BudgetUse]:
    """Each scope's use in its windows (``GLOBAL``: every worker's)."""
    found = []
    hour, day = now - HOUR, now - DAY
    for scope in scopes:
        [row] = run(_USE, (hour, hour, hour, day, scope, scope))
        used, reserved, tasks_used, tasks_reserved, flying, day_oldest, hour_oldest = row
        [(waiting,)] = run(_WAITING, (scope,))
        found.append(BudgetUse(
            scope=scope, tokens_used=int(used), tokens_reserved=int(reserved),
            tasks_used=int(tasks_used), tasks_reserved=int(tasks_reserved),
            in_flight=int(flying), waiting=int(waiting), day_oldest=float(day_oldest or 0),
            hour_oldest=float(hour_oldest or 0),
        ))  # fmt: skip
    return found

