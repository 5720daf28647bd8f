"""The write-back ledger in memory, as ``mecha.store.sqlite.writes`` keeps it: a key is
planned once (opened again only if it never reached the forge for good), every change is
guarded by the states it may come from and records its timeline step."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Sequence

from mecha.policy.writes import WriteState, write_json
from mecha.store import WritePlan, WriteRecord, WriteUpdate
from mecha.store.common import lease_end, write_claimable
from mecha.testing.memory.tables import Tables, WriteRow, limited
from mecha.timeline import TimelineEntry

#: a plan for a key in one of these states opens it again (keeping its attempts)
_REOPENED = frozenset({WriteState.FAILED, WriteState.DEAD, WriteState.DRY_RUN})
_OPEN = frozenset({WriteState.PLANNED, WriteState.CALLING})


def plan_writes(tables: Tables, plans: Sequence[WritePlan], now: float) -> list[list[WriteRecord]]:
    """Record each plan's new writes (and its notes when something is new)."""
    found: list[list[WriteRecord]] = []
    for plan in plans:
        records: list[WriteRecord] = []
        new = 0
        for write in plan.writes:
            detail = plan.details.get(write.key, "")
            spec = json.dumps(write_json(write))
            known = tables.writes.get(write.key)
            if known is None:
                tables.writes[write.key] = WriteRow(
                    seq=tables.next_seq(), key=write.key, task_id=plan.task_id,
                    event_id=plan.event_id, worker=write.worker, action=write.action,
                    target=write.target, spec=spec, state=WriteState(plan.state),
                    detail=detail, created_at=now, updated_at=now,
                )  # fmt: skip
            elif known.state in _REOPENED:
                tables.writes[write.key] = dataclasses.replace(
                    known, task_id=plan.task_id, spec=spec, state=WriteState(plan.state),
                    detail=detail, next_at=0.0, updated_at=now,
                )  # fmt: skip
            else:
                records.append(known.record())
                continue
            # new or opened again: it is what was just written (as SQLite gives it back)
            new += 1
            attempts = known.attempts if known is not None else 0
            records.append(WriteRecord(
                write=write, task_id=plan.task_id, event_id=plan.event_id, state=plan.state,
                attempts=attempts, detail=detail, created_at=now, updated_at=now,
            ))  # fmt: skip
        if new or not plan.writes:
            tables.add_timeline(list(plan.notes))
        found.append(records)
    return found


def update_writes(
    tables: Tables, updates: Sequence[WriteUpdate], now: float
) -> list[WriteRecord | None]:
    """Apply each guarded update; record its step."""
    results: list[WriteRecord | None] = []
    for update in updates:
        row = tables.writes.get(update.key)
        if (
            row is None
            or row.state not in update.only_from
            or not write_claimable(update, row.state, row.lease_until, now)
        ):
            results.append(None)
            continue
        if update.fresh_budget:
            attempts = min(row.attempts, 1)
        else:
            attempts = row.attempts + int(update.start_attempt)
        row = dataclasses.replace(
            row, state=WriteState(update.state), detail=update.detail,
            remote_id=update.remote_id or row.remote_id, attempts=attempts,
            next_at=float(update.next_at), updated_at=now,
            node_id=update.node if update.start_attempt else row.node_id,
            lease_until=lease_end(update, now) if update.start_attempt else 0.0,
        )  # fmt: skip
        tables.writes[row.key] = row
        record = row.record()
        if update.step:
            tables.add_timeline([TimelineEntry(
                at=now, step=update.step, event_id=record.event_id, task_id=record.task_id,
                worker=record.write.worker, detail=update.detail,
            )])  # fmt: skip
        results.append(record)
    return results


def due_writes(
    tables: Tables, *, now: float, limit: int, skip: Collection[str]
) -> list[WriteRecord]:
    """Open writes whose time has come, oldest first."""
    rows = [
        r for r in tables.writes.values()
        if r.state in _OPEN and r.next_at <= now
        and (r.state is not WriteState.CALLING or r.lease_until < now)
    ]  # fmt: skip
    rows = limited(sorted(rows, key=lambda row: row.seq), limit + len(skip))
    return [row.record() for row in rows if row.key not in skip][:limit]


def list_writes(tables: Tables, *, event_id: str | None, task_id: str | None) -> list[WriteRecord]:
    """One event's or one task's writes, in planning order (the newest 1000 of all if
    neither is given)."""
    rows = sorted(tables.writes.values(), key=lambda row: row.seq)
    if task_id is not None:
        task = tables.tasks.get(task_id)
        if task is None:
            return []
        rows = [r for r in rows if r.event_id == task.event_id and r.task_id == task_id]
    elif event_id is not None:
        rows = [r for r in rows if r.event_id == event_id]
    else:
        rows = rows[::-1][:1000]
    return [row.record() for row in rows]
