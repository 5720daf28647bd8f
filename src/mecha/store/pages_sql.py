"""The dashboard's reads (``Store.event_page``, ``failed_writes``, ``worker_figures``,
``recent_changes``, task paging): one text of each statement for SQLite and PostgreSQL
(given the parameter mark, ``?`` or ``%s``), and the rows they answer made into records.

Every page is read newest first through an index whose last columns are the order's
(created_at, id), with the keyset cursor ``(created_at, id) < (?, ?)``: a page deep in
costs what the first does. Migration 12 made those indexes, the ``title`` column of
events (a page shows it without parsing JSON), ``search_text`` (what a search reads: one
column, lowercased when stored, compared as plain text; SQLite keeps it in the index
``events_page`` too, so a search that finds little reads the index, not the rows), and
``event_at`` of event_matches (the event's created_at: a worker's events are paged
through ``matches_worker`` alone).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mecha.event import Event, EventState
from mecha.store.records import EventQuery, EventRow, WorkerFigures, WorkerOutcome
from mecha.task import TaskState

#: what a page shows of an event: no raw body, headers or attributes (``number`` and
#: ``title`` are columns)
PAGE_COLUMNS = (
    "e.id, e.source, e.delivery_id, e.type, e.actor, e.subject, e.state, e.error, "
    "e.created_at, e.updated_at, e.number, e.title"
)
#: a search, by dialect: the id from its start, and text anywhere in ``search_text`` (the
#: type, actor, subject, delivery id and title, lowercased: ``search_text()``); plain
#: text compared, so ``%`` and ``_`` are no wildcards
SEARCH = {
    "?": ("instr(e.id, {mark}) = 1", "instr(e.search_text, {mark}) > 0"),
    "%s": ("strpos(e.id, {mark}) = 1", "strpos(e.search_text, {mark}) > 0"),
}
_FAILED_WRITES = "state IN ('failed', 'dead-letter')"
#: where a row of ``changed_sql`` has its updated_at: events (``PAGE_COLUMNS``), tasks
#: (``common.TASK_COLUMNS``)
UPDATED_AT = {"events": 9, "tasks": 10}


#: ``list_tasks``'s keyset cursor: tasks after the one of this (created_at, id) in the list's
#: order (created_at, then ``tie``: the rowid or seq, the order they were made in). A task
#: gone since (pruned) stands for the first made at its time
BEFORE = "(created_at, {tie}) < ({mark}, coalesce((SELECT {tie} FROM tasks WHERE id = {mark}), 0))"


def page_sql(query: EventQuery, mark: str) -> tuple[str, list[Any]]:
    """The statement of one page of events and its parameters (``mark``: ``?`` for SQLite,
    ``%s`` for PostgreSQL)."""
    prefix, within = SEARCH[mark]
    where: list[str] = []
    params: list[Any] = []
    if query.worker:
        # the worker's events come from its index, in the order of the page: the event's
        # created_at is kept on the decision (event_at)
        source = "event_matches AS m CROSS JOIN events AS e"
        where += [f"m.worker = {mark}", "m.task_id <> ''", "e.id = m.event_id"]
        params.append(query.worker)
        at, key = "m.event_at", "m.event_id"
    else:
        source, at, key = "events AS e", "e.created_at", "e.id"
    # a source has no page index of its own (every index costs each stored event): the
    # page's order reads events_page and checks it; `|| ''` keeps a planner from taking
    # events_pull (source, subject, number) and then sorting all of that source's events
    for column, value in (("e.state", query.state and query.state.value),
                          ("(e.source || '')", query.source),
                          ("e.subject", query.repo)):  # fmt: skip
        if value:
            where.append(f"{column} = {mark}")
            params.append(value)
    if query.since is not None:
        where.append(f"{at} >= {mark}")
        params.append(query.since)
    if query.until is not None:
        where.append(f"{at} < {mark}")
        params.append(query.until)
    if query.before is not None:
        where.append(f"({at}, {key}) < ({mark}, {mark})")
        params += [query.before[0], query.before[1]]
    if query.search:
        # the id from its start (ids are lowercase hex), the rest anywhere in search_text
        text = query.search.lower()
        where.append(f"({prefix.format(mark=mark)} OR {within.format(mark=mark)})")
        params += [text, text]
    sql = (
        f"SELECT {PAGE_COLUMNS} FROM {source} "  # noqa: S608  (constant text; values are marks)
        f"{'WHERE ' + ' AND '.join(where) if where else ''} "
        f"ORDER BY {at} DESC, {key} DESC LIMIT {mark}"
    )
    return sql, [*params, max(0, query.limit)]


def workers_sql(mark: str, count: int) -> str:
    """The decisions (and their tasks' states) of ``count`` events: one statement a page."""
    marks = ", ".join([mark] * count)
    return (
        "SELECT m.event_id, m.worker, m.outcome, m.task_id, t.state "  # noqa: S608
        "FROM event_matches AS m LEFT JOIN tasks AS t ON t.id = m.task_id "
        f"WHERE m.event_id IN ({marks}) ORDER BY m.event_id, m.worker"
    )


def changed_sql(table: str, columns: str, mark: str) -> tuple[str, str]:
    """The rows of ``table`` changed after a time, oldest change first (``updated_at``, then
    id), and the rest of a tie: those changed at the same time as the last, after its id."""
    head = f"SELECT {columns} FROM {table} AS e"  # noqa: S608  (constant names)
    return (
        f"{head} WHERE e.updated_at > {mark} ORDER BY e.updated_at, e.id LIMIT {mark}",
        f"{head} WHERE e.updated_at = {mark} AND e.id > {mark} ORDER BY e.id",
    )


def failed_writes_sql(columns: str, mark: str, *, paged: bool, hint: str = "") -> str:
    """Failed and dead-lettered writes, newest first by (updated_at, key): the partial
    index ``writes_failed`` holds just those. ``hint``: SQLite's ``INDEXED BY`` it (left
    to itself, it may read both states through ``writes_due`` and sort them)."""
    after = f"AND (updated_at, key) < ({mark}, {mark}) " if paged else ""
    return (
        f"SELECT {columns} FROM writes {hint} WHERE {_FAILED_WRITES} {after}"  # noqa: S608
        f"ORDER BY updated_at DESC, key DESC LIMIT {mark}"
    )


def figures_sql(mark: str, extra: str = "") -> str:
    """Each worker with a task (found by skipping through ``tasks_worker``, one probe a
    worker), with counts and its last error read from ``tasks_figures`` (worker, state,
    finished_at, created_at). ``extra``: more columns, on ``w.worker`` (its parameters
    come after the two ``since``)."""
    of = "FROM tasks WHERE worker = w.worker AND state ="
    return f"""
        WITH RECURSIVE w (worker) AS (
            SELECT min(worker) FROM tasks
            UNION ALL
            SELECT (SELECT min(worker) FROM tasks WHERE worker > w.worker)
            FROM w WHERE w.worker IS NOT NULL
        )
        SELECT w.worker,
            (SELECT count(*) {of} 'pending'),
            (SELECT count(*) {of} 'running'),
            (SELECT count(*) {of} 'completed' AND finished_at >= {mark}),
            (SELECT count(*) {of} 'failed' AND finished_at >= {mark}),
            (SELECT error {of} 'failed' ORDER BY finished_at DESC LIMIT 1){extra}
        FROM w WHERE w.worker IS NOT NULL
    """  # noqa: S608  (constant text; values are marks)


#: a worker's latencies since a time, read from ``tasks_figures`` alone
LATENCIES = (
    "SELECT finished_at - created_at FROM tasks "
    "WHERE worker = {mark} AND state = 'completed' AND finished_at >= {mark}"
)


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of sorted values, interpolated linearly between the two
    nearest (as PostgreSQL's ``percentile_cont``); None for no values."""
    if not ordered:
        return None
    at = fraction * (len(ordered) - 1)
    low = math.floor(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def figures(row: Sequence[Any], latencies: Iterable[float] | None = None,
            p50: float | None = None, p95: float | None = None) -> WorkerFigures:  # fmt: skip
    """A worker's figures from a ``figures_sql`` row, with its latencies (or their
    percentiles, computed already)."""
    if latencies is not None:
        ordered = sorted(latencies)
        p50, p95 = percentile(ordered, 0.5), percentile(ordered, 0.95)
    worker, pending, running, completed, failed, error = row[:6]
    return WorkerFigures(
        worker=worker, pending=int(pending), running=int(running), completed=int(completed),
        failed=int(failed), latency_p50=p50, latency_p95=p95, last_error=error or "",
    )  # fmt: skip


def page_event(row: Sequence[Any]) -> Event:
    """The Event of a ``PAGE_COLUMNS`` row: ``attrs`` holds ``number`` and ``title`` only,
    each where it is set."""
    (event_id, source, delivery_id, type_, actor, subject, state, error, created, updated,
     number, title) = row  # fmt: skip
    attrs: dict[str, Any] = {}
    if number:
        attrs["number"] = int(number)
    if title:
        attrs["title"] = title
    return Event(
        id=event_id, source=source, delivery_id=delivery_id, type=type_, actor=actor,
        subject=subject, attrs=attrs, state=EventState(state), error=error,
        created_at=created, updated_at=updated,
    )  # fmt: skip


def page_rows(events: Sequence[Event], decisions: Iterable[Sequence[Any]]) -> list[EventRow]:
    """The page's rows: each event with its decisions (rows of ``workers_sql``)."""
    found: dict[str, list[WorkerOutcome]] = {}
    for event_id, worker, outcome, task_id, state in decisions:
        task_state = TaskState(state) if state else None
        found.setdefault(event_id, []).append(
            WorkerOutcome(worker=worker, outcome=outcome, task_id=task_id, task_state=task_state)
        )
    return [EventRow(event=event, workers=tuple(found.get(event.id, ()))) for event in events]


def title_of(attrs: Mapping[str, Any]) -> str:
    """The ``title`` column of an event: its ``title`` attribute if that is text, else ""."""
    title = attrs.get("title")
    return title if isinstance(title, str) else ""


def search_text(type_: str, actor: str, subject: str, delivery_id: str, title: str) -> str:
    """The ``search_text`` column of an event: the searched fields, one a line, lowercased
    here (Python's ``lower``, so the three stores fold case alike)."""
    return "\n".join((type_, actor, subject, delivery_id, title)).lower()


def shown_columns(event: Event, attrs: Mapping[str, Any]) -> tuple[str, str]:
    """The ``title`` and ``search_text`` columns of ``event`` with the attributes ``attrs``."""
    title = title_of(attrs)
    return title, search_text(event.type, event.actor, event.subject, event.delivery_id, title)


#: the stored fields ``hydrated_columns`` reads, by the event's id (one mark)
HYDRATED_FIELDS = "SELECT type, actor, subject, delivery_id FROM events WHERE id = {mark}"


def hydrated_columns(fields: Sequence[str] | None, attrs: Mapping[str, Any]) -> tuple[str, str]:
    """The ``title`` and ``search_text`` columns of an event whose attributes become
    ``attrs`` (hydration); ``fields``: its HYDRATED_FIELDS row, None if it is gone."""
    title = title_of(attrs)
    if fields is None:
        return title, ""
    type_, actor, subject, delivery_id = fields
    return title, search_text(type_, actor, subject, delivery_id, title)
