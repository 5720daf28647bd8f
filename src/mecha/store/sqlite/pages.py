"""The dashboard's reads in SQLite: ``PagesMixin`` gives SqliteStore ``event_page``,
``failed_writes``, ``worker_figures`` and ``recent_changes`` (the statements are
``mecha.store.pages_sql``'s, shared with PostgreSQL)."""

from __future__ import annotations

import sqlite3
from typing import Any

from mecha.event import Event
from mecha.store.common import TASK_COLUMNS, WRITE_COLUMNS, task_from_row, write_from_row
from mecha.store.pages_sql import (
    LATENCIES,
    PAGE_COLUMNS,
    UPDATED_AT,
    changed_sql,
    failed_writes_sql,
    figures,
    figures_sql,
    page_event,
    page_rows,
    page_sql,
    workers_sql,
)
from mecha.store.records import EventQuery, EventRow, WorkerFigures, WriteRecord
from mecha.store.sqlite.parts import SqliteParts
from mecha.task import Task

_EVENTS_CHANGED = changed_sql("events", PAGE_COLUMNS, "?")
_TASKS_CHANGED = changed_sql("tasks", TASK_COLUMNS, "?")
_FIGURES = figures_sql("?")
_LATENCIES = LATENCIES.format(mark="?")


class PagesMixin(SqliteParts):
    """SqliteStore's dashboard reads; the class provides ``_use``."""

    def event_page(self, query: EventQuery) -> list[EventRow]:
        """See Store.event_page."""
        sql, params = page_sql(query, "?")
        with self._use("reading a page of events") as conn:
            events = [page_event(row) for row in conn.execute(sql, params)]
            return _with_workers(conn, events)

    def failed_writes(
        self, *, limit: int = 50, before: tuple[float, str] | None = None
    ) -> list[WriteRecord]:
        """See Store.failed_writes."""
        sql = failed_writes_sql(
            WRITE_COLUMNS, "?", paged=before is not None, hint="INDEXED BY writes_failed"
        )
        params = [*(before or ()), limit]
        with self._use("listing failed writes") as conn:
            return [write_from_row(row) for row in conn.execute(sql, params)]

    def worker_figures(self, *, since: float) -> dict[str, WorkerFigures]:
        """See Store.worker_figures (the percentiles are computed here)."""
        with self._use("reading worker figures") as conn:
            rows = conn.execute(_FIGURES, (since, since)).fetchall()
            return {
                row[0]: figures(row, [n for (n,) in conn.execute(_LATENCIES, (row[0], since))])
                for row in rows
            }

    def recent_changes(
        self, *, after: float, limit: int = 200
    ) -> tuple[list[EventRow], list[Task]]:
        """See Store.recent_changes."""
        with self._use("reading recent changes") as conn:
            changed = _changed(conn, _EVENTS_CHANGED, UPDATED_AT["events"], after, limit)
            events = [page_event(row) for row in changed]
            changed = _changed(conn, _TASKS_CHANGED, UPDATED_AT["tasks"], after, limit)
            tasks = [task_from_row(row) for row in changed]
            return _with_workers(conn, events), tasks


def _changed(
    conn: sqlite3.Connection, sql: tuple[str, str], updated: int, after: float, limit: int
) -> list[Any]:
    """The rows changed after ``after``: at most ``limit``, and the rest of the last one's
    tie (``updated``: where a row has its updated_at)."""
    rows = conn.execute(sql[0], (after, limit)).fetchall()
    if rows and len(rows) >= limit:
        last = rows[-1]
        rows += conn.execute(sql[1], (last[updated], last[0])).fetchall()
    return rows


def _with_workers(conn: sqlite3.Connection, events: list[Event]) -> list[EventRow]:
    """The page's rows: one more statement reads every event's decisions."""
    if not events:
        return []
    ids = [event.id for event in events]
    return page_rows(events, conn.execute(workers_sql("?", len(ids)), ids))
