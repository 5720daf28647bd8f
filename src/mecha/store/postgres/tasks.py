"""Tasks and the timeline in PostgreSQL: the statements, given a connection (never commits).

As in SQLite: every task change is guarded by the states it may come from, checked and
written in one ``UPDATE … WHERE state IN (…) RETURNING`` (the claim a second node will
race on stays one statement), and records its timeline step in the same transaction.
The event follows its tasks; its row is locked before its tasks are counted, so two
connections finishing its last two tasks at once cannot both miss the end.
"""

from __future__ import annotations

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
from mecha.store.postgres.ids import rows_by_id
from mecha.store.postgres.parts import Conn, insert_rows
from mecha.task import FINAL_STATES, NewTask, Task, TaskState
from mecha.timeline import Step, TimelineEntry
from mecha.worker.kind import WorkerState

_INSERT_TIMELINE = "INSERT INTO timeline (at, step, event_id, task_id, worker, detail)"
_TIMELINE_MARKS = "%s, %s, %s, %s, %s, %s"
_INSERT_TASK = f"INSERT INTO tasks ({TASK_COLUMNS})"  # constant column names
_TASK_MARKS = "%s, %s, %s, %s, %s, %s, %s, '', 0, %s, %s, '', %s, 0, 0, 0, 0, %s, %s, ''"
_MARK_GUARD = mark_guard_sql("%s")
_SELECT_TIMELINE = "SELECT at, step, event_id, task_id, worker, detail FROM timeline"


def timeline_row(entry: TimelineEntry) -> tuple[Any, ...]:
    """The INSERT parameters of one timeline entry."""
    return (entry.at, str(entry.step), entry.event_id, entry.task_id, entry.worker, entry.detail)


def add_timeline(conn: Conn, entries: Sequence[TimelineEntry]) -> None:
    """Insert timeline entries (in order: their ids are the timeline's order)."""
    insert_rows(conn, _INSERT_TIMELINE, _TIMELINE_MARKS, [timeline_row(e) for e in entries])


def list_timeline(
    conn: Conn,
    *,
    event_id: str | None = None,
    task_id: str | None = None,
    worker: str | None = None,
    limit: int,
) -> list[TimelineEntry]:
    """One event's, one task's or one worker's own steps, oldest first (insertion order
    breaks ties)."""
    if worker is not None:
        rows = conn.execute(
            f"{_SELECT_TIMELINE} WHERE event_id = '' AND task_id = '' AND worker = %s "
            "ORDER BY id DESC LIMIT %s",
            (worker, limit),
        ).fetchall()
        rows.reverse()
    elif event_id is not None or task_id is not None:
        where, key = ("event_id", event_id) if event_id is not None else ("task_id", task_id)
        rows = conn.execute(
            f"{_SELECT_TIMELINE} WHERE {where} = %s ORDER BY id LIMIT %s", (key, limit)
        ).fetchall()
    else:
        return []
    return [
        TimelineEntry(at=at, step=step, event_id=e, task_id=t, worker=w, detail=d)
        for at, step, e, t, w, d in rows
    ]


def get_task(conn: Conn, task_id: str) -> Task:
    """The task with this id or unique prefix; TaskNotFound."""
    rows = rows_by_id(conn, f"SELECT {TASK_COLUMNS} FROM tasks", task_id)  # noqa: S608
    if len(rows) != 1:
        raise task_not_found(task_id, found=len(rows))
    return task_from_row(rows[0])


def list_tasks(
    conn: Conn,
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
            clauses.append(f"{column} = %s")
            params.append(value)
    if state is not None:
        clauses.append("state = %s")
        params.append(state.value)
    if before is not None:
        # ties keep the order they were made in: the cursor's id stands for its seq
        clauses.append(BEFORE.format(mark="%s", tie="seq"))
        params += [before[0], before[1]]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT {TASK_COLUMNS} FROM tasks {where} "  # noqa: S608
        "ORDER BY created_at DESC, seq DESC LIMIT %s"
    )
    return [task_from_row(row) for row in conn.execute(sql, (*params, limit))]


def task_row(task: Task) -> tuple[Any, ...]:
    """The ``_INSERT_TASK`` parameters of a new task."""
    context = json_text(task.context)
    return (task.id, task.worker, task.event_id, task.dedup_key, task.prompt, context,
            task.state.value, task.created_at, task.updated_at, task.next_retry_at,
            task.flow_key, task.flow_at)  # fmt: skip


def insert_tasks(conn: Conn, tasks: Sequence[Task]) -> list[Task]:
    """Insert new pending tasks in one statement; a task whose dedup key is taken is
    replaced by the stored one (matched before, e.g. recovery after a crash)."""
    rows = [task_row(task) for task in tasks]
    tail = "ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
    inserted = {row[0] for row in insert_rows(conn, _INSERT_TASK, _TASK_MARKS, rows, tail)}
    taken = [task.dedup_key for task in tasks if task.id not in inserted]
    stored = {}
    if taken:
        found = conn.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE dedup_key = ANY(%s)",  # noqa: S608
            (taken,),
        )
        stored = {task.dedup_key: task for task in map(task_from_row, found)}
    return [task if task.id in inserted else stored[task.dedup_key] for task in tasks]


def create_tasks(
    conn: Conn, tasks: Sequence[NewTask], now: float, ids: Sequence[str]
) -> list[Task]:
    """API tasks: pending, with the dedup key ``api:<id>``, each with a timeline entry."""
    made = [
        Task(
            id=task_id,
            worker=new.worker,
            event_id=new.event_id,
            dedup_key=new.dedup_key or f"api:{task_id}",
            prompt=new.prompt,
            context=dict(new.context),
            created_at=now,
            updated_at=now,
        )
        for new, task_id in zip(tasks, ids, strict=True)
    ]
    tail = "ON CONFLICT (dedup_key) DO NOTHING"
    insert_rows(conn, _INSERT_TASK, _TASK_MARKS, [task_row(task) for task in made], tail)
    if made:
        notify_tasks(conn)
    add_timeline(
        conn,
        [TimelineEntry(at=now, step=Step.CREATED, event_id=t.event_id, task_id=t.id,
                       worker=t.worker, detail="sent through the API") for t in made],
    )  # fmt: skip
    return made


def update_tasks(conn: Conn, updates: Sequence[TaskUpdate], now: float) -> list[Task | None]:
    """Apply each guarded update; the task after it, or None where the guard refused.

    Rows are locked in one order on every connection, so two nodes' batches never
    deadlock: first the limits of the workers whose tasks are claimed (an advisory lock
    each, by key), then the tasks (by id), then their events (by id). A task leaving
    ``running`` or becoming ``pending`` notifies ``mecha_tasks`` at the commit: other
    nodes look for work at once (a slot of a worker with global limits may be free).
    """
    applied: list[Task | None] = []
    events: dict[str, TaskState] = {}
    entries: list[TimelineEntry] = []
    _lock_rows(conn, updates)
    nudge = False
    by: set[str] = set()  # the nodes whose updates notify
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
        if task.state is not TaskState.RUNNING:
            nudge = True
            by.add(update.node)
        if update.step:
            entries.append(TimelineEntry(at=now, step=update.step, event_id=task.event_id,
                                         task_id=task.id, worker=task.worker,
                                         detail=update.detail))  # fmt: skip
        if task.event_id:
            events[task.event_id] = task.state
    add_timeline(conn, entries)
    for event_id in sorted(events):  # one order for every connection: no deadlock
        _follow(conn, event_id, events[event_id], now)
    if nudge:  # one node's own changes: that node knows already (it hears the others')
        notify_tasks(conn, by.pop() if len(by) == 1 else "")
    return applied


_T_COLUMNS = ", ".join(f"t.{name.strip()}" for name in TASK_COLUMNS.split(","))
#: the channel nodes listen on for tasks to look at (``mecha.store.postgres.listen``)
CHANNEL = "mecha_tasks"
#: the first key of the advisory locks that make one worker's claims take turns
_LIMITS_LOCK = 0x6D656361


def notify_tasks(conn: Conn, node: str = "") -> None:
    """Tell every listening node, at this transaction's commit, to look for due tasks.

    ``node`` (the payload) names the node whose own tasks changed, when one did: its
    listener ignores the notification, as its dispatcher saw the change itself."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, node))


def _lock_rows(conn: Conn, updates: Sequence[TaskUpdate]) -> None:
    """The limits of the claimed workers, then the tasks by id; then the updates apply in
    their own order."""
    _lock_limits(conn, updates)
    if len(updates) > 1:
        conn.execute(
            "SELECT 1 FROM tasks WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
            (sorted({u.task_id for u in updates}),),
        ).fetchall()


def _lock_limits(conn: Conn, updates: Sequence[TaskUpdate]) -> None:
    """Lock the limits of every worker a claim here is limited by, in key order (held to
    the commit): claims of one worker on several nodes take turns, and see each other's
    tasks running."""
    ids = [u.task_id for u in updates if (u.limits is not None or u.keyed) and u.start_attempt]
    if ids:
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s, k) FROM (SELECT DISTINCT hashtext(worker) AS k "
            "FROM tasks WHERE id = ANY(%s) ORDER BY k) AS keys",
            (_LIMITS_LOCK, ids),
        ).fetchall()


def _claim_waits(conn: Conn, update: TaskUpdate, now: float) -> tuple[Any, ...] | None:
    """For a claim: the task's row if its flow or its worker's limits hold it back; () if
    it is not in a state the claim starts from; None if it may go (or this is no claim)."""
    if not update.start_attempt:
        return None
    waiting = flow_held(conn, update, "%s")
    if waiting is None and update.limits is not None:
        waiting = _held_back(conn, update, update.limits, now)
    return waiting


def _held_back(
    conn: Conn, update: TaskUpdate, limits: WorkerLimits, now: float
) -> tuple[Any, ...] | None:
    """The task's row if its worker's limits hold the claim back; () if the task is not in
    a state the claim may start from; None if the claim may go (its token is taken)."""
    found = conn.execute(
        f"SELECT {_T_COLUMNS}, (SELECT count(*) FROM tasks AS r WHERE r.worker = t.worker "  # noqa: S608
        "AND r.state = 'running'), p.tokens, p.at FROM tasks AS t "
        "LEFT JOIN paces AS p ON p.worker = t.worker WHERE t.id = %s AND t.state = ANY(%s)",
        (update.task_id, [s.value for s in update.only_from]),
    ).fetchone()
    if found is None:
        return ()
    row, running, stored = found[:-3], found[-3], found[-2:]
    tokens = bucket_tokens(limits, stored if stored[0] is not None else None, now)
    if held_back(limits, running, tokens):
        return tuple(row)
    if limits.rate > 0:
        conn.execute(
            "INSERT INTO paces (worker, tokens, at) VALUES (%s, %s, %s) ON CONFLICT (worker) "
            "DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
            (row[1], tokens - 1, now),
        )
    return None


def _apply(conn: Conn, update: TaskUpdate, now: float) -> tuple[Any, ...] | None:
    sets = ["state = %s", "updated_at = %s"]
    params: list[Any] = [update.state.value, now]
    if update.error is not None:
        sets.append("error = %s")
        params.append(update.error)
    if update.result is not None:
        sets.append("result = %s")
        params.append(json_text(update.result))
    if update.state is TaskState.PENDING:
        sets.append("next_retry_at = %s")
        params.append(update.next_retry_at)
    if update.reset_attempts:
        sets.append("attempts = 0")
    if update.start_attempt:
        sets.extend(["attempts = attempts + 1", "dispatched_at = %s", "timeout = %s",
                     "tokens = 0", "node_id = %s", "lease_until = %s"])  # fmt: skip
        params.extend([now, update.timeout, update.node, lease_end(update, now)])
    sets.append("finished_at = %s")
    params.append(now if update.state in FINAL_STATES else 0)
    row = conn.execute(
        f"UPDATE tasks SET {', '.join(sets)} "  # noqa: S608 - constant column names
        "WHERE id = %s AND state = ANY(%s) AND (%s = '' OR state <> 'running' OR node_id = %s) "
        f"AND {_MARK_GUARD} RETURNING {TASK_COLUMNS}",
        (*params, update.task_id, [s.value for s in update.only_from], *fence(update),
         *mark_guard(update.state)),
    ).fetchone()  # fmt: skip
    return tuple(row) if row is not None else None


def ended_flows(conn: Conn, entries: Sequence[TimelineEntry], now: float) -> None:
    """Record what flow control did (``mecha.store.flow_sql``); move the events of the
    tasks it ended along (in id order, as every connection locks them)."""
    add_timeline(conn, entries)
    for event_id in sorted({e.event_id for e in entries if e.step == Step.SUPERSEDED}):
        if event_id:
            _follow(conn, event_id, TaskState.SUPERSEDED, now)


def _follow(conn: Conn, event_id: str, state: TaskState, now: float) -> None:
    """Move the event along with its tasks."""
    if state in (TaskState.RUNNING, TaskState.PENDING):
        conn.execute(
            "UPDATE events SET state = %s, updated_at = %s WHERE id = %s AND state = ANY(%s)",
            (EventState.DISPATCHED.value, now, event_id, [s.value for s in reopened_from(state)]),
        )
        return
    # the event's row first: a connection finishing another of its tasks waits here, and
    # counts after this transaction commits
    conn.execute("SELECT 1 FROM events WHERE id = %s FOR NO KEY UPDATE", (event_id,))
    counts = {
        state: int(n)
        for state, n in conn.execute(
            "SELECT state, count(*) FROM tasks WHERE event_id = %s GROUP BY state", (event_id,)
        )
    }
    done = finished(counts)
    if done is None:
        return  # tasks of this event are still to run
    conn.execute(
        "UPDATE events SET state = %s, error = %s, updated_at = %s WHERE id = %s",
        (done[0].value, done[1], now, event_id),
    )


def task_states(conn: Conn, task_ids: Collection[str]) -> dict[str, TaskState]:
    """The current state of each of these tasks (unknown ids are left out)."""
    rows = conn.execute("SELECT id, state FROM tasks WHERE id = ANY(%s)", (list(task_ids),))
    return {task_id: TaskState(state) for task_id, state in rows}


def due_tasks(conn: Conn, *, now: float, limit: int, skip: Collection[str] = ()) -> list[Task]:
    """Pending tasks whose time has come, oldest first, leaving out the ids in ``skip``.

    Ids are read first and whole rows only for the rest: a server that holds most pending
    tasks already reads little.
    """
    ids = [
        task_id
        for (task_id,) in conn.execute(
            "SELECT id FROM tasks WHERE state = 'pending' AND next_retry_at <= %s "
            "ORDER BY created_at, seq LIMIT %s",
            (now, limit),
        )
        if task_id not in skip
    ]
    if not ids:
        return []
    rows = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ANY(%s) ORDER BY created_at, seq",  # noqa: S608
        (ids,),
    )
    return [task_from_row(row) for row in rows]


def recover(conn: Conn, now: float) -> tuple[int, int]:
    """Running tasks back to pending (with a timeline entry), marked ones superseded;
    busy workers back to online."""
    ended_flows(conn, end_marked(conn, "1 = 1", (), now, "%s"), now)
    rows = conn.execute(
        "UPDATE tasks SET state = 'pending', next_retry_at = 0, updated_at = %s "
        "WHERE state = 'running' RETURNING id, event_id, worker, seq",
        (now,),
    ).fetchall()
    rows.sort(key=lambda row: row[3])  # RETURNING has no order; SQLite's is the table's
    add_timeline(
        conn,
        [TimelineEntry(at=now, step=Step.REQUEUED, event_id=e, task_id=t, worker=w,
                       detail=REQUEUED_DETAIL) for t, e, w, _ in rows],
    )  # fmt: skip
    conn.execute("UPDATE writes SET lease_until = 0 WHERE state = 'calling'")
    workers = conn.execute(
        "UPDATE workers SET state = %s, updated_at = %s WHERE state = %s RETURNING name",
        (WorkerState.ONLINE.value, now, WorkerState.BUSY.value),
    ).fetchall()
    return len(rows), len(workers)
