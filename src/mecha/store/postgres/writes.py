"""The write-back ledger in PostgreSQL: ``LedgerMixin`` gives PostgresStore its write methods.

As in SQLite: every ledger change is committed synced (``synchronous_commit`` on, the
server's default) before it returns, is guarded by the states it may come from, and
records its timeline step in the same transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence

from mecha.policy.writes import WriteState, write_json
from mecha.store import WritePlan, WriteRecord, WriteUpdate
from mecha.store.common import WRITE_COLUMNS, lease_end, write_from_row
from mecha.store.postgres.parts import Conn, PostgresParts
from mecha.store.postgres.tasks import add_timeline
from mecha.timeline import TimelineEntry

_SELECT = f"SELECT {WRITE_COLUMNS} FROM writes"  # noqa: S608  (constant column names)
# A key already in the ledger is left as it stands, unless its write never reached the
# forge for good (failed, dead-lettered, a dry run): a new plan for it opens it again,
# keeping its attempts, so a write tried before is still looked for on the forge first.
_INSERT = (
    "INSERT INTO writes (key, task_id, event_id, worker, action, target, spec, "
    "state, detail, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (key) DO UPDATE SET task_id = excluded.task_id, spec = excluded.spec, "
    "state = excluded.state, detail = excluded.detail, next_at = 0, "
    "updated_at = excluded.updated_at "
    "WHERE writes.state IN ('failed', 'dead-letter', 'dry-run') RETURNING attempts"
)
# a claim (``start_attempt``) takes a write another node is calling only once its lease ended
_UPDATE = (
    "UPDATE writes SET state = %s, detail = %s, "  # noqa: S608  (constant column names)
    "remote_id = CASE WHEN %s = '' THEN remote_id ELSE %s END, "
    "attempts = CASE WHEN %s THEN least(attempts, 1) ELSE attempts + %s END, "
    "next_at = %s, updated_at = %s, node_id = CASE WHEN %s THEN %s ELSE node_id END, "
    "lease_until = %s WHERE key = %s AND state = ANY(%s) "
    "AND NOT (%s AND state = 'calling' AND lease_until >= %s) "
    f"RETURNING {WRITE_COLUMNS}"
)
_OPEN = [WriteState.PLANNED.value, WriteState.CALLING.value]


def plan_writes(conn: Conn, plans: Sequence[WritePlan], now: float) -> list[list[WriteRecord]]:
    """Insert each plan's new writes (and its notes when something is new)."""
    found: list[list[WriteRecord]] = []
    for plan in plans:
        records: list[WriteRecord] = []
        new = 0
        for write in plan.writes:
            detail = plan.details.get(write.key, "")
            planned = conn.execute(
                _INSERT,
                (write.key, plan.task_id, plan.event_id, write.worker, write.action,
                 write.target, json.dumps(write_json(write)), plan.state.value, detail, now, now),
            ).fetchone()  # fmt: skip
            if planned is not None:  # new or opened again: it is what was just written
                new += 1
                records.append(WriteRecord(
                    write=write, task_id=plan.task_id, event_id=plan.event_id, state=plan.state,
                    attempts=planned[0], detail=detail, created_at=now, updated_at=now,
                ))  # fmt: skip
            elif row := conn.execute(f"{_SELECT} WHERE key = %s", (write.key,)).fetchone():
                records.append(write_from_row(row))
        if new or not plan.writes:
            add_timeline(conn, plan.notes)
        found.append(records)
    return found


def update_writes(
    conn: Conn, updates: Sequence[WriteUpdate], now: float
) -> list[WriteRecord | None]:
    """Apply each guarded update; record its step."""
    results: list[WriteRecord | None] = []
    for update in updates:
        claim = update.start_attempt
        row = conn.execute(
            _UPDATE,
            (update.state.value, update.detail, update.remote_id, update.remote_id,
             update.fresh_budget, int(claim), update.next_at, now, claim, update.node,
             lease_end(update, now) if claim else 0.0, update.key,
             [state.value for state in update.only_from], claim, now),
        ).fetchone()  # fmt: skip
        record = write_from_row(row) if row is not None else None
        if record is not None and update.step:
            entry = TimelineEntry(
                at=now, step=update.step, event_id=record.event_id, task_id=record.task_id,
                worker=record.write.worker, detail=update.detail,
            )  # fmt: skip
            add_timeline(conn, [entry])
        results.append(record)
    return results


def due_writes(conn: Conn, *, now: float, limit: int, skip: Collection[str]) -> list[WriteRecord]:
    """Open writes whose time has come, oldest first."""
    rows = conn.execute(
        f"{_SELECT} WHERE state = ANY(%s) AND next_at <= %s "
        "AND (state <> 'calling' OR lease_until < %s) ORDER BY seq LIMIT %s",
        (_OPEN, now, now, limit + len(skip)),
    ).fetchall()
    records = [write_from_row(row) for row in rows]
    return [record for record in records if record.key not in skip][:limit]


def list_writes(conn: Conn, *, event_id: str | None, task_id: str | None) -> list[WriteRecord]:
    """One event's or one task's writes, in planning order."""
    if task_id is not None:
        rows = conn.execute(
            f"{_SELECT} WHERE event_id = (SELECT event_id FROM tasks WHERE id = %s) "  # noqa: S608
            "AND task_id = %s ORDER BY seq",
            (task_id, task_id),
        )
    elif event_id is not None:
        rows = conn.execute(f"{_SELECT} WHERE event_id = %s ORDER BY seq", (event_id,))
    else:
        rows = conn.execute(f"{_SELECT} ORDER BY seq DESC LIMIT 1000")
    return [write_from_row(row) for row in rows.fetchall()]


class LedgerMixin(PostgresParts):
    """PostgresStore's ledger methods; the class provides ``_write`` and ``_use``."""

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
