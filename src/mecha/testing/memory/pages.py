"""The dashboard's reads in memory, as ``mecha.store.pages_sql`` reads them in SQLite:
pages newest first by (created_at, id) with a keyset cursor, failed writes, each
worker's figures, and what changed after a time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mecha.event import Event
from mecha.policy.writes import WriteState
from mecha.store.pages_sql import figures, page_event, page_rows
from mecha.store.records import EventQuery, EventRow, WorkerFigures, WriteRecord
from mecha.task import Task, TaskState
from mecha.testing.memory.tables import EventRow as StoredEvent
from mecha.testing.memory.tables import Tables, limited

_FAILED = frozenset({WriteState.FAILED, WriteState.DEAD})


def event_page(tables: Tables, query: EventQuery) -> list[EventRow]:
    """See Store.event_page (case-insensitive as Python's ``lower``)."""
    worked = _worked(tables, query.worker) if query.worker else None
    rows = sorted(
        (row for row in tables.events.values()
         if (worked is None or row.id in worked) and _wanted(row, query)),
        key=lambda row: (row.created_at, row.id), reverse=True,
    )  # fmt: skip
    return _with_workers(tables, [_event(row) for row in limited(rows, max(0, query.limit))])


def failed_writes(
    tables: Tables, *, limit: int, before: tuple[float, str] | None
) -> list[WriteRecord]:
    """See Store.failed_writes."""
    rows = sorted(
        (row for row in tables.writes.values()
         if row.state in _FAILED and (before is None or (row.updated_at, row.key) < before)),
        key=lambda row: (row.updated_at, row.key), reverse=True,
    )  # fmt: skip
    return [row.record() for row in limited(rows, limit)]


def worker_figures(tables: Tables, *, since: float) -> dict[str, WorkerFigures]:
    """See Store.worker_figures."""
    found: dict[str, WorkerFigures] = {}
    for worker in sorted({row.worker for row in tables.tasks.values()}):
        mine = [row for row in tables.tasks.values() if row.worker == worker]
        count = {state: sum(1 for row in mine if row.state == state) for state in TaskState}
        done = {state: [row for row in mine if row.state == state and row.finished_at >= since]
                for state in (TaskState.COMPLETED, TaskState.FAILED)}  # fmt: skip
        failed = [row for row in mine if row.state == TaskState.FAILED]
        last = max(failed, key=lambda row: row.finished_at).error if failed else ""
        row = (worker, count[TaskState.PENDING], count[TaskState.RUNNING],
               len(done[TaskState.COMPLETED]), len(done[TaskState.FAILED]), last)  # fmt: skip
        latencies = [r.finished_at - r.created_at for r in done[TaskState.COMPLETED]]
        found[worker] = figures(row, latencies)
    return found


def recent_changes(
    tables: Tables, *, after: float, limit: int
) -> tuple[list[EventRow], list[Task]]:
    """See Store.recent_changes."""
    events = _changed(tables.events.values(), after, limit)
    tasks = _changed(tables.tasks.values(), after, limit)
    return _with_workers(tables, [_event(row) for row in events]), [row.task() for row in tasks]


def _changed(rows: Iterable[Any], after: float, limit: int) -> list[Any]:
    """Rows changed after ``after``, oldest change first: ``limit``, and the last one's tie."""
    ordered = sorted((row for row in rows if row.updated_at > after),
                     key=lambda row: (row.updated_at, row.id))  # fmt: skip
    if len(ordered) <= limit:
        return ordered
    last = ordered[limit - 1] if limit > 0 else None
    tie = [row for row in ordered[limit:] if last is not None and row.updated_at == last.updated_at]
    return ordered[:limit] + tie


def _worked(tables: Tables, worker: str) -> set[str]:
    """The events ``worker`` decided about with a task."""
    return {row.event_id for row in tables.matches.values() if row.worker == worker and row.task_id}


def _wanted(row: StoredEvent, query: EventQuery) -> bool:
    """Whether the event passes every filter of ``query`` but the worker's."""
    checks = (
        query.state is None or row.state == query.state,
        not query.source or row.source == query.source,
        not query.repo or row.subject == query.repo,
        query.since is None or row.created_at >= query.since,
        query.until is None or row.created_at < query.until,
        query.before is None or (row.created_at, row.id) < query.before,
        not query.search or _found(row, query.search.lower()),
    )
    return all(checks)


def _found(row: StoredEvent, text: str) -> bool:
    return row.id.startswith(text) or text in row.search_text


def _event(row: StoredEvent) -> Event:
    """The event as a page shows it (``number`` and ``title`` its only attributes)."""
    return page_event(
        (row.id, row.source, row.delivery_id, row.type, row.actor, row.subject, row.state.value,
         row.error, row.created_at, row.updated_at, row.number, row.title)
    )  # fmt: skip


def _with_workers(tables: Tables, events: Sequence[Event]) -> list[EventRow]:
    ids = {event.id for event in events}
    decisions = sorted(
        (row.event_id, row.worker, row.outcome, row.task_id,
         tables.tasks[row.task_id].state.value if row.task_id in tables.tasks else None)
        for row in tables.matches.values() if row.event_id in ids
    )  # fmt: skip
    return page_rows(events, decisions)
