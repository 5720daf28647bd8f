"""Tasks and the timeline in memory, as ``mecha.store.sqlite.tasks`` keeps them: guarded
changes, the event following its tasks, due tasks, recovery after a stop."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Sequence

from mecha.errors import StoreError
from mecha.event import EventState
from mecha.policy.writes import WriteState
from mecha.store import TaskUpdate, WorkerLimits
from mecha.store.common import (
    REQUEUED_DETAIL,
    bucket_tokens,
    fence,
    finished,
    held_back,
    json_text,
    lease_end,
    reopened_from,
    task_not_found,
)
from mecha.store.flow import change_allowed
from mecha.task import FINAL_STATES, NewTask, Task, TaskState
from mecha.testing.memory.flow import end_marked, flow_held
from mecha.testing.memory.tables import Tables, TaskRow, by_id, limited
from mecha.timeline import Step, TimelineEntry
from mecha.worker.kind import WorkerState


def insert_task(tables: Tables, row: TaskRow) -> bool:
    """Store a new task; False if its dedup key is taken."""
    if row.dedup_key in tables.dedup:
        return False
    if row.id in tables.tasks:
        raise StoreError(
            f"a task with the id {row.id} is stored already (while storing tasks)",
            hint="this is a bug in mecha: task ids are made fresh; report it",
        )
    tables.tasks[row.id] = dataclasses.replace(row, seq=tables.next_seq())
    tables.dedup[row.dedup_key] = row.id
    return True


def get_task(tables: Tables, task_id: str) -> Task:
    """The task with this id or unique prefix; TaskNotFound."""
    rows = by_id(tables.tasks, task_id)
    if len(rows) != 1:
        raise task_not_found(task_id, found=len(rows))
    return rows[0].task()


def list_tasks(
    tables: Tables,
    *,
    event_id: str | None,
    state: TaskState | None,
    worker: str | None,
    limit: int,
    before: tuple[float, str] | None = None,
) -> list[Task]:
    """Tasks newest first (by created_at, then as made), optionally of one event, in one
    state or for one worker, after the task ``before`` names (its created_at and id)."""
    rows = [
        row
        for row in tables.tasks.values()
        if (event_id is None or row.event_id == event_id)
        and (worker is None or row.worker == worker)
        and (state is None or row.state == state)
        and (before is None or (row.created_at, row.seq) < _cursor(tables, before))
    ]
    rows.sort(key=lambda row: (row.created_at, row.seq), reverse=True)
    return [row.task() for row in limited(rows, limit)]


def _cursor(tables: Tables, before: tuple[float, str]) -> tuple[float, int]:
    """``list_tasks``'s cursor in its order: the task's created_at and seq (0 if it is gone)."""
    row = tables.tasks.get(before[1])
    return before[0], row.seq if row is not None else 0


def create_tasks(
    tables: Tables, tasks: Sequence[NewTask], now: float, ids: Sequence[str]
) -> list[Task]:
    """API tasks: pending, with the dedup key ``api:<id>``, each with a timeline entry."""
    made: list[Task] = []
    for new, task_id in zip(tasks, ids, strict=True):
        row = TaskRow(
            seq=0, id=task_id, worker=new.worker, event_id=new.event_id,
            dedup_key=new.dedup_key or f"api:{task_id}", prompt=new.prompt,
            context=json_text(dict(new.context)), state=TaskState.PENDING, created_at=now,
            updated_at=now,
        )  # fmt: skip
        insert_task(tables, row)  # as in SQLite: the task is given back even if its key was taken
        made.append(row.task())
    tables.add_timeline(
        [TimelineEntry(at=now, step=Step.CREATED, event_id=t.event_id, task_id=t.id,
                       worker=t.worker, detail="sent through the API") for t in made],
    )  # fmt: skip
    return made


def update_tasks(tables: Tables, updates: Sequence[TaskUpdate], now: float) -> list[Task | None]:
    """Apply each guarded update; the task after it, or None where the guard refused."""
    applied: list[Task | None] = []
    events: dict[str, TaskState] = {}
    for update in updates:
        row = tables.tasks.get(update.task_id)
        node = fence(update)[0]
        if update.start_attempt and row is not None and flow_held(tables, row, update):
            applied.append(row.task())
            continue
        if (row is None or row.state not in update.only_from
                or (node and row.state is TaskState.RUNNING and row.node_id != node)
                or not change_allowed(update.state, bool(row.superseded_by))):  # fmt: skip
            applied.append(None)
            continue
        limits = update.limits if update.start_attempt else None
        if limits is not None and _held_back(tables, row.worker, limits, now):
            applied.append(row.task())
            continue
        changed = _changed(row, update, now)
        tables.tasks[row.id] = changed
        task = changed.task()
        applied.append(task)
        if update.step:
            tables.add_timeline(
                [TimelineEntry(at=now, step=update.step, event_id=task.event_id,
                               task_id=task.id, worker=task.worker, detail=update.detail)],
            )  # fmt: skip
        if task.event_id:
            events[task.event_id] = task.state
    for event_id, state in events.items():
        _follow(tables, event_id, state, now)
    return applied


def _held_back(tables: Tables, worker: str, limits: WorkerLimits, now: float) -> bool:
    """Whether the worker's limits hold a claim back; if not, its token is taken."""
    running = sum(
        1 for t in tables.tasks.values() if t.worker == worker and t.state is TaskState.RUNNING
    )
    tokens = bucket_tokens(limits, tables.paces.get(worker), now)
    if held_back(limits, running, tokens):
        return True
    if limits.rate > 0:
        tables.paces[worker] = (tokens - 1, now)
    return False


def _changed(row: TaskRow, update: TaskUpdate, now: float) -> TaskRow:
    state = TaskState(update.state)
    changed = dataclasses.replace(
        row, state=state, updated_at=now, finished_at=now if state in FINAL_STATES else 0.0
    )
    if update.error is not None:
        changed = dataclasses.replace(changed, error=update.error)
    if update.result is not None:
        changed = dataclasses.replace(changed, result=json_text(update.result))
    if state is TaskState.PENDING:
        changed = dataclasses.replace(changed, next_retry_at=float(update.next_retry_at))
    if update.start_attempt:  # (SQL's last assignment of attempts wins over a reset)
        changed = dataclasses.replace(
            changed, attempts=row.attempts + 1, dispatched_at=now,
            timeout=float(update.timeout), tokens=0, node_id=update.node,
            lease_until=lease_end(update, now),
        )  # fmt: skip
    elif update.reset_attempts:
        changed = dataclasses.replace(changed, attempts=0)
    return changed


def ended_flows(tables: Tables, entries: Sequence[TimelineEntry], now: float) -> None:
    """Record what flow control did; move the events of the tasks it ended along."""
    tables.add_timeline(list(entries))
    for event_id in dict.fromkeys(e.event_id for e in entries if e.step == Step.SUPERSEDED):
        if event_id:
            _follow(tables, event_id, TaskState.SUPERSEDED, now)


def _follow(tables: Tables, event_id: str, state: TaskState, now: float) -> None:
    """Move the event along with its tasks."""
    row = tables.events.get(event_id)
    if state in (TaskState.RUNNING, TaskState.PENDING):
        if row is not None and row.state in reopened_from(state):
            tables.events[event_id] = dataclasses.replace(
                row, state=EventState.DISPATCHED, updated_at=now
            )
        return
    counts = Counter(t.state.value for t in tables.tasks.values() if t.event_id == event_id)
    done = finished(counts)
    if done is None or row is None:
        return  # tasks of this event are still to run
    tables.events[event_id] = dataclasses.replace(row, state=done[0], error=done[1], updated_at=now)


def task_states(tables: Tables, task_ids: Collection[str]) -> dict[str, TaskState]:
    """The current state of each of these tasks (unknown ids are left out)."""
    return {i: tables.tasks[i].state for i in task_ids if i in tables.tasks}


def set_task_tokens(tables: Tables, counts: Sequence[tuple[str, int]]) -> None:
    """Tokens so far of the running ones of these tasks."""
    for task_id, tokens in counts:
        row = tables.tasks.get(task_id)
        if row is not None and row.state is TaskState.RUNNING:
            tables.tasks[task_id] = dataclasses.replace(row, tokens=int(tokens))


def due_tasks(tables: Tables, *, now: float, limit: int, skip: Collection[str]) -> list[Task]:
    """Pending tasks whose time has come, oldest first: the first ``limit``, then those in
    ``skip`` left out (so fewer than ``limit`` may come back, as in SQLite)."""
    rows = [
        row
        for row in tables.tasks.values()
        if row.state is TaskState.PENDING and row.next_retry_at <= now
    ]
    rows.sort(key=lambda row: (row.created_at, row.seq))
    return [row.task() for row in limited(rows, limit) if row.id not in skip]


def recover(tables: Tables, now: float) -> tuple[int, int]:
    """Running tasks back to pending (with a timeline entry), marked ones superseded;
    busy workers back to online."""
    ended_flows(tables, end_marked(tables, lambda _: True, now), now)
    running = sorted(
        (row for row in tables.tasks.values() if row.state is TaskState.RUNNING),
        key=lambda row: (row.created_at, row.seq),
    )
    for row in running:
        tables.tasks[row.id] = dataclasses.replace(
            row, state=TaskState.PENDING, next_retry_at=0.0, updated_at=now
        )
    tables.add_timeline(
        [TimelineEntry(at=now, step=Step.REQUEUED, event_id=r.event_id, task_id=r.id,
                       worker=r.worker, detail=REQUEUED_DETAIL) for r in running],
    )  # fmt: skip
    for write in list(tables.writes.values()):
        if write.state is WriteState.CALLING:
            tables.writes[write.key] = dataclasses.replace(write, lease_until=0.0)
    busy = [w for w in tables.workers.values() if w.record.state is WorkerState.BUSY]
    for worker in busy:
        record = dataclasses.replace(worker.record, state=WorkerState.ONLINE, updated_at=now)
        tables.workers[record.name] = dataclasses.replace(worker, record=record)
    return len(running), len(busy)


def list_timeline(
    tables: Tables,
    *,
    event_id: str | None = None,
    task_id: str | None = None,
    worker: str | None = None,
    limit: int,
) -> list[TimelineEntry]:
    """One event's, one task's or one worker's own steps (the newest ``limit``), oldest
    first."""
    entries = [row.entry for row in tables.timeline]
    if worker is not None:
        own = [
            e for e in reversed(entries) if not e.event_id and not e.task_id and e.worker == worker
        ]
        return list(reversed(limited(own, limit)))
    if event_id is not None:
        return limited([e for e in entries if e.event_id == event_id], limit)
    if task_id is not None:
        return limited([e for e in entries if e.task_id == task_id], limit)
    return []
