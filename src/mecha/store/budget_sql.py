"""The budget ledger in SQL, one text for SQLite and PostgreSQL (``mecha.budget``'s rules).

Tables (migration 9): ``budget_ledger``, a row per reserved attempt (its id, the ticket;
task id, attempt, worker, when, tokens reserved, tokens used, ``open`` or ``settled``), and
``budget_waits``, a row per task refused (since when, on which budget). Statements are written with
SQLite's ``?`` marks; ``mark`` turns them into PostgreSQL's ``%s``. Each function takes
``run`` (a statement and its parameters → the rows it answered) on a connection inside
the caller's transaction; the caller serialises reservations (SQLite's write lock,
PostgreSQL's advisory lock per budget).

An open row is *in flight* while its attempt is still on its way: its task running that
attempt, or pending with one attempt fewer for at most ``CLAIM_WITHIN`` (reserved, not
yet claimed). A row left open by a node that died (its task taken back, or never claimed)
is no longer in flight but keeps its reservation as its cost until it leaves the window.
A task is reserved for once per attempt: a reservation for a task that is not pending, or
whose attempt another node reserved and is claiming, is *taken* and reserves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mecha.budget import (
    CLAIM_WITHIN,
    DAY,
    GLOBAL,
    HOUR,
    TASKS,
    TOKENS,
    BudgetLimit,
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

#: a statement and its parameters → the rows it answered ([] for one that answers none)
Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

_COST = "CASE WHEN b.state = 'open' THEN b.reserved ELSE b.used END"
#: in flight, of an open row (its parameter: reservations since then still wait for their
#: claim)
_LIVE = (
    "((t.state = 'pending' AND t.attempts = b.attempt - 1 AND b.at > ?) "
    "OR (t.state = 'running' AND t.attempts = b.attempt))"
)
#: each query reads one scope's rows after a time: ``{scope}`` is "" (the global scope: all
#: rows) or a worker's condition, so each can use its own index
_SUM = f"SELECT coalesce(sum({_COST}), 0) FROM budget_ledger AS b WHERE b.at > ?{{scope}}"  # noqa: S608
_COUNT = "SELECT count(*) FROM budget_ledger AS b WHERE b.at > ?{scope}"
_FLYING = (
    "SELECT count(*) FROM budget_ledger AS b JOIN tasks AS t ON t.id = b.task_id "  # noqa: S608
    f"WHERE b.state = 'open' AND b.at > ?{{scope}} AND {_LIVE}"
)
_ROWS = (
    f"SELECT b.at, {_COST}, CASE WHEN b.state = 'open' AND {_LIVE} THEN 1 ELSE 0 END "  # noqa: S608
    "FROM budget_ledger AS b LEFT JOIN tasks AS t ON t.id = b.task_id "
    "WHERE b.at > ?{scope} ORDER BY b.at"
)
_USE = (
    "SELECT coalesce(sum(CASE WHEN b.state = 'settled' THEN b.used ELSE 0 END), 0), "
    "coalesce(sum(CASE WHEN b.state = 'open' THEN b.reserved ELSE 0 END), 0), "
    "count(CASE WHEN b.at > ? AND b.state = 'settled' THEN 1 END), "
    "count(CASE WHEN b.at > ? AND b.state = 'open' THEN 1 END), "
    "min(b.at), min(CASE WHEN b.at > ? THEN b.at END) "
    "FROM budget_ledger AS b WHERE b.at > ?{scope}"
)
_WAITING = (
    "SELECT w.kind, count(*) FROM budget_waits AS w JOIN tasks AS t ON t.id = w.task_id "
    "AND t.state = 'pending' WHERE w.scope = ? GROUP BY w.kind"
)


def mark(sql: str) -> str:
    """``sql`` with PostgreSQL's parameter marks."""
    return sql.replace("?", "%s")


def _scoped(sql: str, scope: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` for one scope, and the scope's parameters (after the time's)."""
    if scope == GLOBAL:
        return sql.replace("{scope}", ""), ()
    return sql.replace("{scope}", " AND b.worker = ?"), (scope,)


def reserve(run: Run, reservations: Sequence[Reservation], now: float) -> list[Verdict]:
    """Reserve each in turn (each sees the ones before it); rows past the day dropped."""
    run("DELETE FROM budget_ledger WHERE at <= ?", (now - DAY,))
    return [_reserve(run, reservation, now) for reservation in reservations]


def _reserve(run: Run, reservation: Reservation, now: float) -> Verdict:
    """Reserve in every budget of ``reservation`` or in none; a refusal records the wait."""
    attempt = _next_attempt(run, reservation.task_id, now)
    if attempt is None:
        return Verdict(granted=False, taken=True)
    totals = {limit.scope: _totals(run, limit, now) for limit in reservation.limits}
    scope, kind = refused_scope(reservation, totals)
    if not scope and not kind:
        ticket = new_id()
        run(
            "INSERT INTO budget_ledger (id, task_id, attempt, worker, at, reserved, used, state) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, 'open')",
            (ticket, reservation.task_id, attempt, reservation.worker, now, reservation.tokens),
        )
        run("DELETE FROM budget_waits WHERE task_id = ?", (reservation.task_id,))
        return Verdict(granted=True, ticket=ticket)
    start = now - (DAY if kind == TOKENS else HOUR)
    sql, params = _scoped(_ROWS, scope)
    window = run(sql, (now - CLAIM_WITHIN, start, *params))
    found = [Spent(at, int(cost), bool(live)) for at, cost, live in window]
    verdict = judge(reservation, totals, {scope: found})
    return _waiting(run, reservation, verdict, now)


def _next_attempt(run: Run, task_id: str, now: float) -> int | None:
    """The attempt a reservation for the task pays for; None if it is taken (the task is
    not pending, or its next attempt was reserved a moment ago and is being claimed)."""
    rows = run("SELECT state, attempts FROM tasks WHERE id = ?", (task_id,))
    if not rows or rows[0][0] != "pending":
        return None
    attempt = int(rows[0][1]) + 1
    claiming = run(
        "SELECT 1 FROM budget_ledger WHERE task_id = ? AND attempt = ? AND state = 'open' "
        "AND at > ?",
        (task_id, attempt, now - CLAIM_WITHIN),
    )
    return None if claiming else attempt


def _totals(run: Run, limit: BudgetLimit, now: float) -> Totals:
    """What ``limit``'s windows hold (only the windows it limits are read)."""
    tokens = tasks = flying = 0
    if limit.tokens_per_day:
        sql, params = _scoped(_SUM, limit.scope)
        [(tokens,)] = run(sql, (now - DAY, *params))
        sql, params = _scoped(_FLYING, limit.scope)
        [(flying,)] = run(sql, (now - DAY, *params, now - CLAIM_WITHIN))
    if limit.tasks_per_hour:
        sql, params = _scoped(_COUNT, limit.scope)
        [(tasks,)] = run(sql, (now - HOUR, *params))
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
            "INSERT INTO budget_waits (task_id, worker, scope, kind, since) VALUES (?, ?, ?, ?, ?)",
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
        if not done.sent:
            run("DELETE FROM budget_ledger WHERE id = ?", (done.ticket,))
        elif done.tokens is None:
            run(
                "UPDATE budget_ledger SET used = reserved, state = 'settled' "
                "WHERE id = ? AND state = 'open'",
                (done.ticket,),
            )
        else:
            run(
                "UPDATE budget_ledger SET used = ?, state = 'settled' "
                "WHERE id = ? AND state = 'open'",
                (done.tokens, done.ticket),
            )
        run("DELETE FROM budget_waits WHERE task_id = ?", (done.task_id,))


def use(run: Run, scopes: Sequence[str], now: float) -> list[BudgetUse]:
    """Each scope's use in its windows (``GLOBAL``: every worker's)."""
    found = []
    hour, day = now - HOUR, now - DAY
    for scope in scopes:
        sql, params = _scoped(_USE, scope)
        [row] = run(sql, (hour, hour, hour, day, *params))
        used, reserved, tasks_used, tasks_reserved, day_oldest, hour_oldest = row
        sql, params = _scoped(_FLYING, scope)
        [(flying,)] = run(sql, (day, *params, now - CLAIM_WITHIN))
        waiting = {kind: int(count) for kind, count in run(_WAITING, (scope,))}
        found.append(BudgetUse(
            scope=scope, tokens_used=int(used), tokens_reserved=int(reserved),
            tasks_used=int(tasks_used), tasks_reserved=int(tasks_reserved),
            in_flight=int(flying), tokens_waiting=waiting.get(TOKENS, 0),
            tasks_waiting=waiting.get(TASKS, 0), day_oldest=float(day_oldest or 0),
            hour_oldest=float(hour_oldest or 0),
        ))  # fmt: skip
    return found
