"""Per-key flow control in memory, as ``mecha.store.flow_sql`` applies it in SQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from mecha.store import TaskUpdate
from mecha.store.flow import (
    born_superseded_detail,
    debounce_detail,
    dropped_detail,
    flow_entry,
    marked_detail,
    superseded_detail,
)
from mecha.task import FlowMark, Task, TaskState
from mecha.testing.memory.tables import Tables, TaskRow
from mecha.timeline import Step, TimelineEntry


def flow_held(tables: Tables, row: TaskRow, update: TaskUpdate) -> bool:
    """Whether the claim of keyed task ``row`` comes back as it stands: it was superseded,
    or another task of its worker and key runs, or is older and still waits."""
    if not update.keyed or not row.flow_key:
        return False
    if row.state is TaskState.SUPERSEDED:
        return True
    if row.state not in update.only_from:
        return False
    order = (row.flow_at, row.id)
    return any(
        other.id != row.id and other.worker == row.worker and other.flow_key == row.flow_key
        and (other.state is TaskState.RUNNING
             or (other.state is TaskState.PENDING and (other.flow_at, other.id) < order))
        for other in tables.tasks.values()
    )  # fmt: skip


def apply_flow(tables: Tables, placed: Sequence[tuple[Task, FlowMark]]) -> list[TimelineEntry]:
    """What each newly stored keyed task does to its key, in order (at its creation time)."""
    entries: list[TimelineEntry] = []
    for task, flow in placed:
        now = task.created_at
        same = [
            r for r in tables.tasks.values()
            if r.worker == task.worker and r.flow_key == flow.key and r.id != task.id
        ]  # fmt: skip
        if flow.replaces:
            newer = sorted((r for r in same if r.flow_at > flow.at), key=lambda r: r.flow_at)
            if newer:
                by = newer[-1].id
                _end(tables, tables.tasks[task.id], by, now)
                detail = born_superseded_detail(by, flow.key)
                entries.append(flow_entry(task.event_id, task.id, task.worker, detail, at=now))
                continue
            detail = superseded_detail(task, flow.key)
            for row in (r for r in same if r.state is TaskState.PENDING):
                _end(tables, row, task.id, now)
                entries.append(flow_entry(row.event_id, row.id, row.worker, detail, at=now))
        if flow.supersede:
            detail = marked_detail(task, flow.key)
            for row in (r for r in same if r.state is TaskState.RUNNING):
                if not row.superseded_by:
                    entries.append(flow_entry(row.event_id, row.id, row.worker, detail, at=now))
                tables.tasks[row.id] = dataclasses.replace(row, superseded_by=task.id)
        if flow.debounce:
            detail = debounce_detail(flow)
            entries.append(flow_entry(task.event_id, task.id, task.worker, detail, at=now,
                                      step=Step.WAITING))  # fmt: skip
    return entries


def end_marked(tables: Tables, which: Callable[[TaskRow], bool], now: float) -> list[TimelineEntry]:
    """Running tasks ``which`` picks that a newer one superseded end ``superseded``."""
    rows = [r for r in tables.tasks.values()
            if r.state is TaskState.RUNNING and r.superseded_by and which(r)]  # fmt: skip
    for row in rows:
        _end(tables, row, row.superseded_by, now)
    return [flow_entry(r.event_id, r.id, r.worker, dropped_detail(r.superseded_by), at=now)
            for r in rows]  # fmt: skip


def _end(tables: Tables, row: TaskRow, by: str, now: float) -> None:
    tables.tasks[row.id] = dataclasses.replace(
        row, state=TaskState.SUPERSEDED, superseded_by=by, finished_at=now, updated_at=now
    )
