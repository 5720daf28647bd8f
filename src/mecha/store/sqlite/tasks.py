"""Tasks and the timeline in SQLite: the statements, given a connection (never commits).

Every task change is guarded by the states it may come from (``TaskUpdate.only_from``),
checked and written in one statement, and records its timeline step in the same
transaction. The event follows its tasks: ``dispatched`` once one starts, and
``completed`` or ``failed`` once the last reaches a final state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from mecha.event import EventState
from mecha.store import TaskUpdate, WorkerLimits
from mecha.store.common import (
    REQUEUED_DETAIL,
    TASK_COLUMNS,
    bucket_tokens,
    fence,
    finished,
    held_back,
    json_text,
    lease_end,
    reopened_from,
    task_from_row,
    task_not_found,
)
from mecha.store.flow import mark_guard, mark_guard_sql
from mecha.store.flow_sql import end_marked, flow_held
from mecha.store.pages_sql import BEFORE
from mecha.store.sqlite.ids import rows_by_id
from mecha.task import FINAL_STATES, NewTask, Task, TaskState
from mecha.timeline import Step, TimelineEntry
from mecha.worker.kind import WorkerState

_MARK_GUARD = mark_guard_sql("?")
_INSERT_TIMELINE = (
    "INSERT INTO timeline (at, step, event_id, task_id, worker, detail) VALUES (?, ?, ?, ?, ?, ?)"
)


def add_timeline(conn: sqlite3.Connection, entries: Sequence[TimelineEntry]) -> None:
    """Insert timeline entries."""
    conn.executemany(
        _INSERT_TIMELINE,
        [(e.at, e.step, e.event_id, e.task_id, e.worker, e.detail) for e in entries],
    )


def list_timeline(
    conn: sqlite3.Connection,
    *,
    event_id: str | None = None,
    task_id: str | None = None,
    worker: str | None = None,
    limit: int,
) -> list[TimelineEntry]:
    """One event's, one task's or one worker's own steps, oldest first (insertion order
    breaks ties)."""
    if worker is not None:
        return _worker_timeline(conn, worker, limit=limit)
    if event_id is not None:
        where, key = "event_id = ?", event_id
    elif task_id is not None:
        where, key = "task_id = ?", task_id
    else:
        return []
    rows = conn.execute(
        "SELECT at, step, event_id, task_id, worker, detail FROM timeline "  # noqa: S608
        f"WHERE {where} ORDER BY id LIMIT ?",
        (key, limit),
    )
    return [
        TimelineEntry(at=at, step=step, event_id=e, task_id=t, worker=w, detail=d)
        for at, step, e, t, w, d in rows
    ]


def _worker_timeline(conn: sqlite3.Connection, worker: str, *, limit: int) -> list[TimelineEntry]:
    """Worker ``worker``'s own steps (no event, no task), the newest ``limit``, oldest first.

    Found through the event index: only entries without an event have ``event_id = ''``.
    """
    rows = conn.execute(
        "SELECT at, step, event_id, task_id, worker, detail FROM timeline "
        "WHERE event_id = '' AND task_id = '' AND worker = ? ORDER BY id DESC LIMIT ?",
        (worker, limit),
    ).fetchall()
    return [
        TimelineEntry(at=at, step=step, event_id=e, task_id=t, worker=w, detail=d)
        for at, step, e, t, w, d in reversed(rows)
    ]


def get_task(conn: sqlite3.Connection, task_id: str) -> Task:
    """The task with this id or unique prefix; TaskNotFound."""
    rows = rows_by_id(conn, f"SELECT {TASK_COLUMNS} FROM tasks", task_id)  # noqa: S608
    if len(rows) != 1:
        raise task_not_found(task_id, found=len(rows))
    return task_from_row(rows[0])


def list_tasks(
    conn: sqlite3.Connection,
    *,
    event_id: str | None,
    state: TaskState | None,
    worker: str | None,
    limit: int,
    before: tuple[float, str] | None = None,
) -> list[Task]:
    """Tasks newest first (by created_at, then as made), optionally of one event, in one
    state or for one worker, after the task ``before`` names (its created_at and id)."""
    clauses: list[str] = []
    params: list[object] = []
    for column, value in (("event_id", event_id), ("worker", worker)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if state is not None:
        clauses.append("state = ?")
        params.append(state.value)
    if before is not None:
        # ties keep the order they were made in: the cursor's id stands for its rowid
        clauses.append(BEFORE.format(mark="?", tie="rowid"))
        params += [before[0], before[1]]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT {TASK_COLUMNS} FROM tasks {where} "  # noqa: S608
        "ORDER BY created_at DESC, rowid DESC LIMIT ?"
    )
    return [task_from_row(row) for row in conn.execute(sql, (*params, limit))]


def insert_task(conn: sqlite3.Connection, task: Task) -> bool:
    """Insert a new pending task; False if its dedup key is taken."""
    cursor = conn.execute(
        f"INSERT INTO tasks ({TASK_COLUMNS}) "  # noqa: S608
        "VALUES (?, ?, ?, ?, ?, ?, ?, '', 0, ?, ?, '', ?, 0, 0, 0, 0, ?, ?, '') "
        "ON CONFLICT (dedup_key) DO NOTHING",
        (task.id, task.worker, task.event_id, task.dedup_key, task.prompt,
         json_text(task.context), task.state.value, task.created_at, task.updated_at,
         task.next_retry_at, task.flow_key, task.flow_at),
    )  # fmt: skip
    return cursor.rowcount == 1


def create_tasks(
    conn: sqlite3.Connection, tasks: Sequence[NewTask], now: float, ids: Sequence[str]
) -> list[Task]:
    """API tasks: pending, with the dedup key ``api:<id>``, each with a timeline entry."""
    made = []
    for new, task_id in zip(tasks, ids, strict=True):
        task = Task(
            id=task_id, worker=new.worker, event_id=new.event_id,
            dedup_key=new.dedup_key or f"api:{task_id}", prompt=new.prompt,
            context=dict(new.context), created_at=now, updated_at=now,
        )  # fmt: skip
        insert_task(conn, task)
        made.append(task)
    add_timeline(
        conn,
        [TimelineEntry(at=now, step=Step.CREATED, event_id=t.event_id, task_id=t.id,
                       worker=t.worker, detail="sent through the API") for t in made],
    )  # fmt: skip
    return made


def update_tasks(
    conn: sqlite3.Connection, updates: Sequence[TaskUpdate], now: float
) -> list[Task | None]:
    """Apply each guarded update; the task after it, or None where the guard refused."""
    applied: list[Task | None] = []
    events: dict[str, TaskState] = {}
    for update in updates:
        waiting = _claim_waits(conn, update, now)
        if waiting is not None:
            applied.append(task_from_row(waiting) if waiting else None)
            continue
        row = _apply(conn, update, now)
        if row is None:
            applied.append(None)
            continue
        task = task_from_row(row)
        applied.append(task)
        if update.step:
            add_timeline(
                conn,
                [TimelineEntry(at=now, step=update.step, event_id=task.event_id,
                               task_id=task.id, worker=task.worker, detail=update.detail)],
            )  # fmt: skip
        if task.event_id:
            events[task.event_id] = task.state
    for event_id, state in events.items():
        _follow(conn, event_id, state, now)
    return applied


def _claim_waits(
    conn: sqlite3.Connection, update: TaskUpdate, now: float
) -> tuple[Any, ...] | None:
    """For a claim: the task's row if its flow or its worker's limits hold it back; () if
    it is not in a state the claim starts from; None if it may go (or this is no claim)."""
    if not update.start_attempt:
        return None
    waiting = flow_held(conn, update, "?")
    if waiting is None and update.limits is not None:
        waiting = _held_back(conn, update, update.limits, now)
    return waiting


def _held_back(
    conn: sqlite3.Connection, update: TaskUpdate, limits: WorkerLimits, now: float
) -> tuple[Any, ...] | None:
    """The task's row if its worker's limits hold the claim back; () if the task is not in
    a state the claim may start from; None if the claim may go (its token is taken)."""
    select = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"  # noqa: S608  (constant columns)
    row = conn.execute(select, (update.task_id,)).fetchone()
    if row is None or TaskState(row[6]) not in update.only_from:
        return ()
    worker = row[1]
    (running,) = conn.execute(
        "SELECT count(*) FROM tasks WHERE worker = ? AND state = 'running'", (worker,)
    ).fetchone()
    stored = conn.execute("SELECT tokens, at FROM paces WHERE worker = ?", (worker,)).fetchone()
    tokens = bucket_tokens(limits, stored, now)
    if held_back(limits, running, tokens):
        return tuple(row)
    if limits.rate > 0:
        conn.execute(
            "INSERT INTO paces (worker, tokens, at) VALUES (?, ?, ?) ON CONFLICT (worker) "
            "DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
            (worker, tokens - 1, now),
        )
    return None


def _apply(conn: sqlite3.Connection, update: TaskUpdate, now: float) -> tuple[Any, ...] | None:
    sets = ["state = ?", "updated_at = ?"]
    params: list[Any] = [update.state.value, now]
    if update.error is not None:
        sets.append("error = ?")
        params.append(update.error)
    if update.result is not None:
        sets.append("result = ?")
        params.append(json_text(update.result))
    if update.state is TaskState.PENDING:
        sets.append("next_retry_at = ?")
        params.append(update.next_retry_at)
    if update.reset_attempts:
        sets.append("attempts = 0")
    if update.start_attempt:
        sets.extend(["attempts = attempts + 1", "dispatched_at = ?", "timeout = ?", "tokens = 0",
                     "node_id = ?", "lease_until = ?"])  # fmt: skip
        params.extend([now, update.timeout, update.node, lease_end(update, now)])
    sets.append("finished_at = ?")
    params.append(now if update.state in FINAL_STATES else 0)
    guard = ", ".join("?" for _ in update.only_from)
    row = conn.execute(
        f"UPDATE tasks SET {', '.join(sets)} "  # noqa: S608 - constant column names
        f"WHERE id = ? AND state IN ({guard}) "
        "AND (? = '' OR state <> 'running' OR node_id = ?) "
        f"AND {_MARK_GUARD} RETURNING {TASK_COLUMNS}",
        (*params, update.task_id, *(s.value for s in update.only_from), *fence(update),
         *mark_guard(update.state)),
    ).fetchone()  # fmt: skip
    return tuple(row) if row is not None else None


def ended_flows(conn: sqlite3.Connection, entries: Sequence[TimelineEntry], now: float) -> None:
    """Record what flow control did (``mecha.store.sqlite.flow``); move the events of the
    tasks it ended along."""
    add_timeline(conn, entries)
    for event_id in dict.fromkeys(e.event_id for e in entries if e.step == Step.SUPERSEDED):
        if event_id:
            _follow(conn, event_id, TaskState.SUPERSEDED, now)


def _follow(conn: sqlite3.Connection, event_id: str, state: TaskState, now: float) -> None:
    """Move the event along with its tasks."""
    if state in (TaskState.RUNNING, TaskState.PENDING):
        before = [s.value for s in reopened_from(state)]
        marks = ", ".join("?" for _ in before)
        conn.execute(
            f"UPDATE events SET state = ?, updated_at = ? WHERE id = ? AND state IN ({marks})",  # noqa: S608
            (EventState.DISPATCHED.value, now, event_id, *before),
        )
        return
    counts = dict(
        conn.execute(
            "SELECT state, count(*) FROM tasks WHERE event_id = ? GROUP BY state", (event_id,)
        ).fetchall()
    )
    done = finished(counts)
    if done is None:
        return  # tasks of this event are still to run
    conn.execute(
        "UPDATE events SET state = ?, error = ?, updated_at = ? WHERE id = ?",
        (done[0].value, done[1], now, event_id),
    )


def task_states(conn: sqlite3.Connection, task_ids: Collection[str]) -> dict[str, TaskState]:
    """The current state of each of these tasks (unknown ids are left out)."""
    ids = list(task_ids)
    states: dict[str, TaskState] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = conn.execute(
            f"SELECT id, state FROM tasks WHERE id IN ({marks})",  # noqa: S608
            chunk,
        )
        states.update((task_id, TaskState(state)) for task_id, state in rows)
    return states


def due_tasks(
    conn: sqlite3.Connection, *, now: float, limit: int, skip: Collection[str] = ()
) -> list[Task]:
    """Pending tasks whose time has come, oldest first, leaving out the ids in ``skip``.

    Ids are read first and whole rows only for the rest: a server that holds most pending
    tasks already reads little.
    """
    ids = [
        task_id
        for (task_id,) in conn.execute(
            "SELECT id FROM tasks WHERE state = 'pending' AND next_retry_at <= ? "
            "ORDER BY created_at, rowid LIMIT ?",
            (now, limit),
        )
        if task_id not in skip
    ]
    tasks: list[Task] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = conn.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id IN ({marks}) "  # noqa: S608
            "ORDER BY created_at, rowid",
            chunk,
        )
        tasks.extend(task_from_row(row) for row in rows)
    return tasks


def recover(conn: sqlite3.Connection, now: float) -> tuple[int, int]:
    """Running tasks back to pending (with a timeline entry), marked ones superseded;
    busy workers back to online."""
    ended_flows(conn, end_marked(conn, "1 = 1", (), now, "?"), now)
    rows = conn.execute(
        "UPDATE tasks SET state = 'pending', next_retry_at = 0, updated_at = ? "
        "WHERE state = 'running' RETURNING id, event_id, worker",
        (now,),
    ).fetchall()
    add_timeline(
        conn,
        [TimelineEntry(at=now, step=Step.REQUEUED, event_id=e, task_id=t, worker=w,
                       detail=REQUEUED_DETAIL) for t, e, w in rows],
    )  # fmt: skip
    conn.execute("UPDATE writes SET lease_until = 0 WHERE state = 'calling'")
    workers = conn.execute(
        "UPDATE workers SET state = ?, updated_at = ? WHERE state = ?",
        (WorkerState.ONLINE.value, now, WorkerState.BUSY.value),
    ).rowcount
    return len(rows), workers
