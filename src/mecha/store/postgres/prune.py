"""Pruning in PostgreSQL: ``PruneMixin`` gives PostgresStore the ``PruneStore`` methods.

The same rules as SQLite's (``mecha.store.sqlite.prune``): one ``prune`` call is one short,
unsynced transaction removing at most ``limit`` rows, writes, then timeline entries, then
tasks, then events (whose match records go with them), a few at a time so a time limit
can end it early; what may go is one SQL condition per kind, shared by the dry run's
counts, and it keeps what is still in use.

Space: PostgreSQL reuses the room of removed rows once (auto)vacuum has seen them;
``reclaim`` runs a plain ``VACUUM`` of the pruned tables (no lock that stops writers).
The write-ahead log is the server's, shared by every database on it: ``wal`` and
``free`` are reported as 0, as MemoryStore does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mecha.event import EventState
from mecha.policy.writes import FINAL_WRITE_STATES, WriteState
from mecha.store.postgres.parts import Conn, PostgresParts
from mecha.store.pruning import PRUNED_KINDS, DiskUsage, PruneCounts
from mecha.task import FINAL_STATES, TaskState


def _states(states: Any) -> str:
    """``('a', 'b')`` from our own enum values, for an IN list (never from input)."""
    return "(" + ", ".join(f"'{state.value}'" for state in sorted(states)) + ")"


_FINAL_TASKS = _states(FINAL_STATES)
_OPEN_TASKS = _states({TaskState.PENDING, TaskState.RUNNING})
_FINAL_EVENTS = _states({EventState.COMPLETED, EventState.FAILED, EventState.SKIPPED})
_FINAL_WRITES = _states(FINAL_WRITE_STATES)
_OPEN_WRITES = _states({WriteState.PLANNED, WriteState.CALLING})
_NO_BOUND = 2**62
#: rows looked for and deleted per statement, so the time limit is checked this often
CHUNKS = {"writes": 16, "timeline": 100, "tasks": 4, "events": 4}

# the conditions are built from our own enum values only, never from input
_TASK = (
    f"t.state IN {_FINAL_TASKS} AND t.created_at < %(tasks)s "  # noqa: S608
    "AND t.updated_at < %(tasks)s "
    "AND NOT EXISTS (SELECT 1 FROM writes ow WHERE ow.event_id = t.event_id "
    f"AND ow.task_id = t.id AND ow.state IN {_OPEN_WRITES})"
)
_UNFINISHED_TASK = f"SELECT 1 FROM tasks u WHERE u.id = {{}} AND u.state IN {_OPEN_TASKS}"  # noqa: S608
_CONDITIONS = {
    "writes": (
        f"w.seq < %(writes_bound)s AND w.state IN {_FINAL_WRITES} "
        "AND w.updated_at < %(writes)s "
        f"AND NOT EXISTS ({_UNFINISHED_TASK.format('w.task_id')})"
    ),
    "timeline": (
        "l.id < %(timeline_bound)s AND l.at < %(timeline)s "  # noqa: S608
        f"AND NOT EXISTS ({_UNFINISHED_TASK.format('l.task_id')}) "
        "AND NOT EXISTS (SELECT 1 FROM events ue WHERE ue.id = l.event_id "
        f"AND ue.state NOT IN {_FINAL_EVENTS})"
    ),
    "tasks": _TASK,
    "events": (
        f"e.state IN {_FINAL_EVENTS} AND e.created_at < %(events)s "  # noqa: S608
        "AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.event_id = e.id{kept}) "
        "AND NOT EXISTS (SELECT 1 FROM writes ow WHERE ow.event_id = e.id "
        f"AND ow.state IN {_OPEN_WRITES})"
    ),
}
#: each kind: (table, alias, its row key, how its rows are ordered)
_TABLES = {
    "writes": ("writes", "w", "seq", "ORDER BY w.seq"),
    "timeline": ("timeline", "l", "id", "ORDER BY l.id"),
    "tasks": ("tasks", "t", "id", ""),
    "events": ("events", "e", "id", ""),
}
#: the first row made at or after the cut, for the kinds numbered in order
_BOUNDS = {
    "writes": "SELECT seq FROM writes WHERE created_at >= %s ORDER BY seq LIMIT 1",
    "timeline": "SELECT id FROM timeline WHERE at >= %s ORDER BY id LIMIT 1",
}
_PRUNED_TABLES = "writes, timeline, tasks, event_matches, events"


def _condition(kind: str, before: Mapping[str, float]) -> str:
    condition = _CONDITIONS[kind]
    if kind == "events":  # an event goes only once none of its tasks is kept
        kept = f" AND NOT ({_TASK})" if "tasks" in before else ""
        condition = condition.replace("{kept}", kept)
    return condition


def _params(conn: Conn, before: Mapping[str, float]) -> dict[str, Any]:
    params: dict[str, Any] = {kind: float(before.get(kind, 0.0)) for kind in PRUNED_KINDS}
    for kind, query in _BOUNDS.items():
        row = conn.execute(query, (params[kind],)).fetchone() if kind in before else None
        params[f"{kind}_bound"] = row[0] if row is not None else _NO_BOUND
    return params


def prune(
    conn: Conn, before: Mapping[str, float], limit: int, seconds: float | None
) -> PruneCounts:
    """Delete at most ``limit`` prunable rows, in ``PRUNED_KINDS`` order, a few at a time;
    with ``seconds``, stop early once that much time has passed."""
    deadline = None if seconds is None else time.monotonic() + seconds
    params = _params(conn, before)
    removed: dict[str, int] = {}
    left = limit
    for kind in PRUNED_KINDS:
        table, alias, key, order = _TABLES[kind]
        delete = (
            f"WITH gone AS (DELETE FROM {table} WHERE {key} IN (SELECT {alias}.{key} "  # noqa: S608
            f"FROM {table} {alias} WHERE {_condition(kind, before)} {order} "
            "LIMIT %(chunk)s) RETURNING 1) SELECT count(*) FROM gone"
        )  # (constant names and conditions; the values are parameters)
        done = 0
        while kind in before and left > 0:
            params["chunk"] = min(CHUNKS[kind], left)
            row = conn.execute(delete, params).fetchone()
            gone = int(row[0]) if row else 0
            done, left = done + gone, left - gone
            if deadline is not None and time.monotonic() >= deadline:
                left = 0  # enough for one transaction: the rest waits for the next
            if gone < params["chunk"]:
                break
        removed[kind] = done
    return PruneCounts(**{kind: count for kind, count in removed.items() if count})


def count_prunable(conn: Conn, before: Mapping[str, float]) -> PruneCounts:
    """How many rows of each kind ``prune`` would remove now."""
    params = _params(conn, before)
    found: dict[str, int] = {}
    for kind in PRUNED_KINDS:
        if kind in before:
            table, alias, _, _ = _TABLES[kind]
            row = conn.execute(
                f"SELECT count(*) FROM {table} {alias} WHERE {_condition(kind, before)}",  # noqa: S608
                params,
            ).fetchone()
            found[kind] = int(row[0]) if row else 0
    return PruneCounts(**found)


def disk_usage(conn: Conn) -> DiskUsage:
    """The database's size on the server (no log or free room of its own to report)."""
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return DiskUsage(database=int(row[0]) if row else 0, wal=0, free=0)


class PruneMixin(PostgresParts):
    """PostgresStore's pruning methods; the class provides ``_write`` and ``_use``."""

    def prune(
        self, before: Mapping[str, float], *, limit: int = 500, seconds: float | None = None
    ) -> PruneCounts:
        """Remove at most ``limit`` finished rows older than ``before`` (one transaction)."""
        if not before or limit <= 0:
            return PruneCounts()
        with self._write("removing old rows", synced=False) as conn:
            return prune(conn, before, limit, seconds)

    def count_prunable(self, before: Mapping[str, float]) -> PruneCounts:
        """How many rows ``prune`` would remove."""
        with self._use("counting old rows") as conn:
            return count_prunable(conn, before)

    def reclaim(self) -> DiskUsage:
        """Vacuum the pruned tables, so new rows reuse the room; the sizes after."""
        with self._use("vacuuming the pruned tables") as conn:
            conn.execute(f"VACUUM {_PRUNED_TABLES}")
            return disk_usage(conn)

    def disk_usage(self) -> DiskUsage:
        """The room the database takes now."""
        with self._use("reading the database's size") as conn:
            return disk_usage(conn)
