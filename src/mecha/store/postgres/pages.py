"""The dashboard's reads in PostgreSQL: ``PagesMixin`` gives PostgresStore ``event_page``,
``failed_writes``, ``worker_figures`` and ``recent_changes`` (the statements are
``mecha.store.pages_sql``'s, shared with SQLite; the percentiles are PostgreSQL's
``percentile_cont``).

Each call is one read-only transaction (its statements see one snapshot) without JIT:
the planner prices the figures' correlated subqueries high enough to compile them, ~300
ms of compiling for a statement that runs in 3 (``bench/store_pages.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from mecha.event import Event
from mecha.store.common import TASK_COLUMNS, WRITE_COLUMNS, task_from_row, write_from_row
from mecha.store.pages_sql import (
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
from mecha.store.postgres.parts import Conn, PostgresParts
from mecha.store.records import EventQuery, EventRow, WorkerFigures, WriteRecord
from mecha.task import Task

_EVENTS_CHANGED = changed_sql("events", PAGE_COLUMNS, "%s")
_TASKS_CHANGED = changed_sql("tasks", TASK_COLUMNS, "%s")
#: a worker's two percentiles in one pass over its completed tasks since ``since``
_PERCENTILES = """,
            (SELECT percentile_cont(ARRAY[0.5, 0.95])
                    WITHIN GROUP (ORDER BY finished_at - created_at)
             FROM tasks WHERE worker = w.worker AND state = 'completed' AND finished_at >= %s)"""
_FIGURES = figures_sql("%s", _PERCENTILES)


@contextlib.contextmanager
def _reading(conn: Conn) -> Iterator[Conn]:
    """One read-only transaction on ``conn``, without JIT compiling."""
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SET LOCAL jit = off")
        yield conn


class PagesMixin(PostgresParts):
    """PostgresStore's dashboard reads; the class provides ``_use``."""

    def event_page(self, query: EventQuery) -> list[EventRow]:
        """See Store.event_page."""
        sql, params = page_sql(query, "%s")
        with self._use("reading a page of events") as pooled, _reading(pooled) as conn:
            events = [page_event(row) for row in conn.execute(sql, params)]
            return _with_workers(conn, events)

    def failed_writes(
        self, *, limit: int = 50, before: tuple[float, str] | None = None
    ) -> list[WriteRecord]:
        """See Store.failed_writes."""
        sql = failed_writes_sql(WRITE_COLUMNS, "%s", paged=before is not None)
        params = [*(before or ()), limit]
        with self._use("listing failed writes") as pooled, _reading(pooled) as conn:
            return [write_from_row(row) for row in conn.execute(sql, params)]

    def worker_figures(self, *, since: float) -> dict[str, WorkerFigures]:
        """See Store.worker_figures."""
        with self._use("reading worker figures") as pooled, _reading(pooled) as conn:
            rows = conn.execute(_FIGURES, (since, since, since)).fetchall()
        return {
            row[0]: figures(row, p50=row[6] and row[6][0], p95=row[6] and row[6][1]) for row in rows
        }

    def recent_changes(
        self, *, after: float, limit: int = 200
    ) -> tuple[list[EventRow], list[Task]]:
        """See Store.recent_changes."""
        with self._use("reading recent changes") as pooled, _reading(pooled) as conn:
            changed = _changed(conn, _EVENTS_CHANGED, UPDATED_AT["events"], after, limit)
            events = [page_event(row) for row in changed]
            changed = _changed(conn, _TASKS_CHANGED, UPDATED_AT["tasks"], after, limit)
            tasks = [task_from_row(row) for row in changed]
            return _with_workers(conn, events), tasks


def _changed(conn: Conn, sql: tuple[str, str], updated: int, after: float, limit: int) -> list[Any]:
    """The rows changed after ``after``: at most ``limit``, and the rest of the last one's
    tie (``updated``: where a row has its updated_at)."""
    rows = conn.execute(sql[0], (after, limit)).fetchall()
    if rows and len(rows) >= limit:
        last = rows[-1]
        rows += conn.execute(sql[1], (last[updated], last[0])).fetchall()
    return rows


def _with_workers(conn: Conn, events: list[Event]) -> list[EventRow]:
    """The page's rows: one more statement reads every event's decisions."""
    if not events:
        return []
    ids = [event.id for event in events]
    return page_rows(events, conn.execute(workers_sql("%s", len(ids)), ids))
