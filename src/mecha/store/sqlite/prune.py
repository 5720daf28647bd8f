"""Pruning in SQLite: ``PruneMixin`` gives SqliteStore the ``PruneStore`` methods.

One ``prune`` call is one short transaction removing at most ``limit`` rows: writes,
then timeline entries, then tasks, then events (whose match records go with them), so an
event's tasks are gone before the event is looked at. Rows go a few at a time
(``CHUNKS``), and a time limit ends the transaction early: 500 tasks of 1 MB results take
2 s to free, which the serve's writer must not wait for. What may go is one SQL condition
per kind (``_conditions``), shared by the dry run's counts, and it keeps what is still in
use (see ``PruneStore``).

No index is added for this. Tasks and events are found through their ``(state,
created_at)`` indexes (a task finishes after it is made, so ``created_at`` before the cut
is necessary); timeline entries and writes are numbered in the order they were made, so
the first one made after the cut bounds the rows to look at, found by reading only the old
rows, and each batch reads little more than what it removes. The rowid of a write
(``seq``) may be used again after the newest write is removed; nothing refers to it.

Space: SQLite reuses the pages of removed rows for new ones, so the file stops growing
once rows leave as fast as they come. ``reclaim`` checkpoints the write-ahead log and
truncates it (``PRAGMA wal_checkpoint(TRUNCATE)``), which otherwise stays as large as the
most it ever held.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mecha.event import EventState
from mecha.policy.writes import FINAL_WRITE_STATES, WriteState
from mecha.store.pruning import PRUNED_KINDS, DiskUsage, PruneCounts
from mecha.store.sqlite.parts import SqliteParts
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
#: rows looked for and deleted per statement: a task's result or an event's body may be
#: megabytes, and freeing them takes about 4 ms a MB, so the time limit is checked this
#: often (rows are looked for a few at a time: reading a column stored after a large one
#: means reading through the large one)
CHUNKS = {"writes": 16, "timeline": 100, "tasks": 4, "events": 4}
#: a time-limited batch also ends once this much room was freed: SQLite built with
#: SECURE_DELETE (Debian's, Ubuntu's) overwrites it with zeros, which the commit writes
FREED_BYTES = 16_000_000

# the conditions are built from our own enum values only, never from input
# a finished task's last change (updated_at) is its end; finished_at is stored after the
# result, so reading it means reading through the result
_TASK = (
    f"t.state IN {_FINAL_TASKS} AND t.created_at < :tasks "  # noqa: S608
    "AND t.updated_at < :tasks "
    "AND NOT EXISTS (SELECT 1 FROM writes ow WHERE ow.event_id = t.event_id "
    f"AND ow.task_id = t.id AND ow.state IN {_OPEN_WRITES})"
)
_UNFINISHED_TASK = f"SELECT 1 FROM tasks u WHERE u.id = {{}} AND u.state IN {_OPEN_TASKS}"  # noqa: S608
_CONDITIONS = {
    "writes": (
        f"w.seq < :writes_bound AND w.state IN {_FINAL_WRITES} AND w.updated_at < :writes "
        f"AND NOT EXISTS ({_UNFINISHED_TASK.format('w.task_id')})"
    ),
    "timeline": (
        "l.id < :timeline_bound AND l.at < :timeline "  # noqa: S608
        f"AND NOT EXISTS ({_UNFINISHED_TASK.format('l.task_id')}) "
        "AND NOT EXISTS (SELECT 1 FROM events ue WHERE ue.id = l.event_id "
        f"AND ue.state NOT IN {_FINAL_EVENTS})"
    ),
    "tasks": _TASK,
    "events": (
        f"e.state IN {_FINAL_EVENTS} AND e.created_at < :events "  # noqa: S608
        "AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.event_id = e.id{kept}) "
        "AND NOT EXISTS (SELECT 1 FROM writes ow WHERE ow.event_id = e.id "
        f"AND ow.state IN {_OPEN_WRITES})"
    ),
}
#: each kind: (table, alias, its row key, how its rows are ordered)
_TABLES = {
    "writes": ("writes", "w", "seq", "ORDER BY w.seq"),
    "timeline": ("timeline", "l", "id", "ORDER BY l.id"),
    "tasks": ("tasks", "t", "rowid", ""),
    "events": ("events", "e", "rowid", ""),
}
#: the first row made at or after the cut, for the kinds numbered in order
_BOUNDS = {
    "writes": "SELECT seq FROM writes WHERE created_at >= ? ORDER BY seq LIMIT 1",
    "timeline": "SELECT id FROM timeline WHERE at >= ? ORDER BY id LIMIT 1",
}


def _condition(kind: str, before: Mapping[str, float]) -> str:
    condition = _CONDITIONS[kind]
    if kind == "events":  # an event goes only once none of its tasks is kept
        kept = f" AND NOT ({_TASK})" if "tasks" in before else ""
        condition = condition.replace("{kept}", kept)
    return condition


def _params(conn: sqlite3.Connection, before: Mapping[str, float]) -> dict[str, float]:
    params = {kind: float(before.get(kind, 0.0)) for kind in PRUNED_KINDS}
    for kind, query in _BOUNDS.items():
        row = conn.execute(query, (params[kind],)).fetchone() if kind in before else None
        params[f"{kind}_bound"] = row[0] if row is not None else _NO_BOUND
    return params


def prune(
    conn: sqlite3.Connection, before: Mapping[str, float], limit: int, seconds: float | None
) -> PruneCounts:
    """Delete at most ``limit`` prunable rows, in ``PRUNED_KINDS`` order, a few at a time;
    with ``seconds``, stop early once that much time has passed or ``FREED_BYTES`` are
    free (the commit writes them: this SQLite may overwrite removed rows with zeros)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    free = _free_pages(conn) + FREED_BYTES // page
    params: dict[str, Any] = _params(conn, before)
    removed: dict[str, int] = {}
    left = limit
    for kind in PRUNED_KINDS:
        table, alias, key, order = _TABLES[kind]
        select = (
            f"SELECT {alias}.{key} FROM {table} {alias} "  # noqa: S608
            f"WHERE {_condition(kind, before)} {order} LIMIT :chunk"
        )  # (constant names and conditions; the values are parameters)
        done = 0
        while kind in before and left > 0:
            params["chunk"] = min(CHUNKS[kind], left)
            keys = [row[0] for row in conn.execute(select, params).fetchall()]
            if keys:
                marks = ", ".join("?" * len(keys))
                conn.execute(f"DELETE FROM {table} WHERE {key} IN ({marks})", keys)  # noqa: S608
            done, left = done + len(keys), left - len(keys)
            if deadline is not None and (time.monotonic() >= deadline or _free_pages(conn) >= free):
                left = 0  # enough for one transaction: the rest waits for the next
            if len(keys) < params["chunk"]:
                break
        removed[kind] = done
    return PruneCounts(**{kind: count for kind, count in removed.items() if count})


def _free_pages(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def count_prunable(conn: sqlite3.Connection, before: Mapping[str, float]) -> PruneCounts:
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
            found[kind] = int(row[0])
    return PruneCounts(**found)


def disk_usage(conn: sqlite3.Connection, path: Path) -> DiskUsage:
    """The database file's size, its log's, and the free room inside the file."""
    pages = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return DiskUsage(
        database=_size(path), wal=_size(path.with_name(path.name + "-wal")), free=pages * size
    )


def _size(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError):
        return os.stat(path).st_size
    return 0


class PruneMixin(SqliteParts):
    """SqliteStore's pruning methods; the class provides ``path``, ``_write`` and ``_use``."""

    path: Path

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
        """Checkpoint the write-ahead log and truncate it; the sizes after."""
        with self._use("checkpointing the write-ahead log") as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return disk_usage(conn, self.path)

    def disk_usage(self) -> DiskUsage:
        """The room the database takes now."""
        with self._use("reading the database's size") as conn:
            return disk_usage(conn, self.path)
