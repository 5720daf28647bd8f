"""Per-key flow control in SQL: the statements SQLite and PostgreSQL share, given a
connection (never commits) and the driver's placeholder (``?`` or ``%s``).

The rules are ``mecha.store.flow``'s. These functions return the timeline entries they
make; the caller adds them and moves each entry's event along (its task ended). On
PostgreSQL a claim's check runs under its worker's advisory lock (``_lock_limits``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mecha.store import TaskUpdate
from mecha.store.common import TASK_COLUMNS
from mecha.store.flow import (
    born_superseded_detail,
    debounce_detail,
    dropped_detail,
    flow_entry,
    marked_detail,
    superseded_detail,
)
from mecha.task import FlowMark, Task, TaskState
from mecha.timeline import Step, TimelineEntry


def flow_held(conn: Any, update: TaskUpdate, mark: str) -> tuple[Any, ...] | None:
    """For the claim of a keyed task: its row if another task of its worker and key runs
    or is older and still waits, or if it was superseded; () if it is not in a state the
    claim starts from; None if the claim may go (or the task has no key)."""
    if not update.keyed:
        return None
    run = _runner(conn, mark)
    select = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"  # noqa: S608  (constant columns)
    row = run(select, (update.task_id,)).fetchone()
    if row is not None and TaskState(row[6]) is TaskState.SUPERSEDED:
        return tuple(row)  # comes back as it stands: the claimer counts it
    if row is None or TaskState(row[6]) not in update.only_from:
        return ()
    worker, key, at, task_id = row[1], row[17], row[18], row[0]
    if not key:
        return None
    ahead = run(
        "SELECT 1 FROM tasks WHERE worker = ? AND flow_key = ? AND id <> ? AND (state = "
        "'running' OR (state = 'pending' AND (flow_at < ? OR (flow_at = ? AND id < ?)))) LIMIT 1",
        (worker, key, task_id, at, at, task_id),
    ).fetchone()
    return tuple(row) if ahead is not None else None


def apply_flow(
    conn: Any, placed: Sequence[tuple[Task, FlowMark]], mark: str
) -> list[TimelineEntry]:
    """What each newly stored keyed task does to its key, in order (at its creation time):
    replace the waiting task (or be born superseded by a newer one), mark the running one,
    wait its debounce."""
    run = _runner(conn, mark)
    entries: list[TimelineEntry] = []
    for task, flow in placed:
        now = task.created_at
        same = (task.worker, flow.key, task.id)
        if flow.replaces:
            newer = run(
                "SELECT id FROM tasks WHERE worker = ? AND flow_key = ? AND id <> ? "
                "AND flow_at > ? ORDER BY flow_at DESC LIMIT 1",
                (*same, flow.at),
            ).fetchone()
            if newer is not None:
                run(
                    "UPDATE tasks SET state = 'superseded', superseded_by = ?, "
                    "finished_at = ?, updated_at = ? WHERE id = ?",
                    (newer[0], now, now, task.id),
                )
                detail = born_superseded_detail(newer[0], flow.key)
                entries.append(flow_entry(task.event_id, task.id, task.worker, detail, at=now))
                continue
            replaced = run(
                "UPDATE tasks SET state = 'superseded', superseded_by = ?, finished_at = ?, "
                "updated_at = ? WHERE worker = ? AND flow_key = ? AND id <> ? "
                "AND state = 'pending' RETURNING id, event_id",
                (task.id, now, now, *same),
            ).fetchall()
            detail = superseded_detail(task, flow.key)
            entries.extend(flow_entry(e, t, task.worker, detail, at=now) for t, e in replaced)
        if flow.supersede:
            running = run(
                "SELECT id, event_id, superseded_by FROM tasks WHERE worker = ? AND flow_key = ? "
                "AND id <> ? AND state = 'running'",
                same,
            ).fetchall()
            for row in running:
                run("UPDATE tasks SET superseded_by = ? WHERE id = ?", (task.id, row[0]))
            detail = marked_detail(task, flow.key)
            entries.extend(
                flow_entry(e, t, task.worker, detail, at=now)
                for t, e, before in running
                if not before
            )
        if flow.debounce:
            detail = debounce_detail(flow)
            entries.append(
                flow_entry(task.event_id, task.id, task.worker, detail, at=now, step=Step.WAITING)
            )
    return entries


def end_marked(
    conn: Any, where: str, params: Sequence[Any], now: float, mark: str
) -> list[TimelineEntry]:
    """Running tasks matching ``where`` that a newer one superseded end ``superseded`` (a
    stop or a lease ending; their answer will never come); their timeline entries."""
    run = _runner(conn, mark)
    rows = run(
        "UPDATE tasks SET state = 'superseded', finished_at = ?, updated_at = ? "  # noqa: S608
        f"WHERE state = 'running' AND superseded_by <> '' AND {where} "
        "RETURNING id, event_id, worker, superseded_by",
        (now, now, *params),
    ).fetchall()
    return [flow_entry(e, t, w, dropped_detail(by), at=now) for t, e, w, by in rows]


def _runner(conn: Any, mark: str) -> Callable[[str, Sequence[Any]], Any]:
    """Runs SQL written with ``?`` on ``conn`` with the driver's placeholder ``mark``."""
    return lambda sql, params: conn.execute(sql.replace("?", mark), params)
