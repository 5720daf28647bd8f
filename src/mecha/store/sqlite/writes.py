"""The write-back ledger in SQLite: ``LedgerMixin`` gives SqliteStore its write methods.

Every ledger change is synced to disk before it returns (``synchronous=FULL``): a write
marked ``calling`` before the forge is called and ``done`` after it is what lets a restart
tell a write that happened from one that did not. Each change is guarded by the states it
may come from and records its timeline step in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Sequence

from mecha.policy.writes import WriteState, write_json
from mecha.store import WritePlan, WriteRecord, WriteUpdate
from mecha.store.common import WRITE_COLUMNS, lease_end, write_from_row
from mecha.store.sqlite.parts import SqliteParts
from mecha.store.sqlite.tasks import add_timeline
from mecha.timeline import TimelineEntry

_SELECT = f"SELECT {WRITE_COLUMNS} FROM writes"  # noqa: S608  (constant column names)
# A key already in the ledger is left as it stands, unless its write never reached the
# forge for good (failed, dead-lettered, a dry run): a new plan for it opens it again,
# keeping its attempts, so a write tried before is still looked for on the forge first.
_INSERT = (
    "INSERT INTO writes (key, task_id, event_id, worker, action, target, spec, "
    "state, detail, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET task_id = excluded.task_id, spec = excluded.spec, "
    "state = excluded.state, detail = excluded.detail, next_at = 0, "
    "updated_at = excluded.updated_at "
    "WHERE writes.state IN ('failed', 'dead-letter', 'dry-run') RETURNING attempts"
)
_OPEN = (WriteState.PLANNED.value, WriteState.CALLING.value)


def _by_key(conn: sqlite3.Connection, key: str) -> WriteRecord | None:
    row = conn.execute(f"{_SELECT} WHERE key = ?", (key,)).fetchone()
    return write_from_row(row) if row is not None else None


def plan_writes(
    conn: sqlite3.Connection, plans: Sequence[WritePlan], now: float
) -> list[list[WriteRecord]]:
    """Insert each plan's new writes (and its notes when something is new)."""
    found: list[list[WriteRecord]] = []
    for plan in plans:
        records: list[WriteRecord] = []
        new = 0
        for write in plan.writes:
            detail = plan.details.get(write.key, "")
            cursor = conn.execute(
                _INSERT,
                (write.key, plan.task_id, plan.event_id, write.worker, write.action,
                 write.target, json.dumps(write_json(write)), plan.state.value, detail, now, now),
            )  # fmt: skip
            planned = cursor.fetchone()
            if planned is not None:  # new or opened again: it is what was just written
                new += 1
                records.append(WriteRecord(
                    write=write, task_id=plan.task_id, event_id=plan.event_id, state=plan.state,
                    attempts=planned[0], detail=detail, created_at=now, updated_at=now,
                ))  # fmt: skip
            elif (known := _by_key(conn, write.key)) is not None:
                records.append(known)
        if new or not plan.writes:
            add_timeline(conn, plan.notes)
        found.append(records)
    return found


def update_writes(
    conn: sqlite3.Connection, updates: Sequence[WriteUpdate], now: float
) -> list[WriteRecord | None]:
    """Apply each guarded update; record its step."""
    results: list[WriteRecord | None] = []
    for update in updates:
        allowed = [state.value for state in update.only_from]
        marks = ", ".join("?" * len(allowed))
        claim = int(update.start_attempt)
        cursor = conn.execute(
            f"UPDATE writes SET state = ?, detail = ?, remote_id = CASE WHEN ? = '' "  # noqa: S608
            f"THEN remote_id ELSE ? END, attempts = CASE WHEN ? THEN min(attempts, 1) "
            f"ELSE attempts + ? END, next_at = ?, updated_at = ?, "
            f"node_id = CASE WHEN ? THEN ? ELSE node_id END, lease_until = ? "
            f"WHERE key = ? AND state IN ({marks}) "
            f"AND NOT (? AND state = 'calling' AND lease_until >= ?)",
            (update.state.value, update.detail, update.remote_id, update.remote_id,
             int(update.fresh_budget), claim, update.next_at, now, claim, update.node,
             lease_end(update, now) if claim else 0.0, update.key, *allowed, claim, now),
        )  # fmt: skip
        record = _by_key(conn, update.key) if cursor.rowcount else None
        if record is not None and update.step:
            entry = TimelineEntry(
                at=now, step=update.step, event_id=record.event_id, task_id=record.task_id,
                worker=record.write.worker, detail=update.detail,
            )  # fmt: skip
            add_timeline(conn, [entry])
        results.append(record)
    return results


def due_writes(
    conn: sqlite3.Connection, *, now: float, limit: int, skip: Collection[str]
) -> list[WriteRecord]:
    """Open writes whose time has come, oldest first."""
    rows = conn.execute(
        f"{_SELECT} WHERE state IN (?, ?) AND next_at <= ? "
        "AND (state <> 'calling' OR lease_until < ?) ORDER BY seq LIMIT ?",
        (*_OPEN, now, now, limit + len(skip)),
    ).fetchall()
    records = [write_from_row(row) for row in rows]
    return [record for record in records if record.key not in skip][:limit]


def list_writes(
    conn: sqlite3.Connection, *, event_id: str | None, task_id: str | None
) -> list[WriteRecord]:
    """One event's or one task's writes, in planning order."""
    if task_id is not None:
        rows = conn.execute(
            f"{_SELECT} WHERE event_id = (SELECT event_id FROM tasks WHERE id = ?) "  # noqa: S608
            "AND task_id = ? ORDER BY seq",
            (task_id, task_id),
        )
    elif event_id is not None:
        rows = conn.execute(f"{_SELECT} WHERE event_id = ? ORDER BY seq", (event_id,))
    else:
        rows = conn.execute(f"{_SELECT} ORDER BY seq DESC LIMIT 1000")
    return [write_from_row(row) for row in rows.fetchall()]


class LedgerMixin(SqliteParts):
    """SqliteStore's ledger methods; the class provides ``_write`` and ``_use``."""

    def plan_writes(self, plans: Sequence[WritePlan]) -> list[list[WriteRecord]]:
        """Record planned writes (synced if any is to be sent); existing keys stand."""
        sending = any(p.writes and p.state is WriteState.PLANNED for p in plans)
        with self._write("recording planned writes", synced=sending) as conn:
            return plan_writes(conn, plans, time.time())

    def update_writes(self, updates: Sequence[WriteUpdate]) -> list[WriteRecord | None]:
        """Apply guarded write changes, synced."""
        with self._write("recording write outcomes") as conn:
            return update_writes(conn, updates, time.time())

    def due_writes(
        self, *, now: float, limit: int = 1000, skip: Collection[str] = ()
    ) -> list[WriteRecord]:
        """Planned writes whose time has come; calling writes whose lease ended."""
        with self._use("listing due writes") as conn:
            return due_writes(conn, now=now, limit=limit, skip=skip)

    def list_writes(
        self, *, event_id: str | None = None, task_id: str | None = None
    ) -> list[WriteRecord]:
        """The writes of one event or one task."""
        with self._use("reading the write ledger") as conn:
            return list_writes(conn, event_id=event_id, task_id=task_id)
