"""The list pages' query strings: filters and keyset cursors, read leniently (a bad value is
dropped with a notice the page shows, never an error page)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mecha.event import EventState
from mecha.store.records import EventQuery
from mecha.task import TaskState

#: the rows a list page shows
PAGE_SIZE = 50
#: the time filter's choices: label → seconds back
WINDOWS = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
#: the longest search text kept
MAX_SEARCH = 200


@dataclass(slots=True)
class Filters:
    """What a list page was asked for: the values as the form shows them, and notices."""

    values: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    before: tuple[float, str] | None = None


def cursor_text(at: float, ident: str) -> str:
    """A keyset cursor for a link: ``<unix time>~<id>``."""
    return f"{at!r}~{ident}"


def read_cursor(text: str, filters: Filters) -> None:
    """``?before=`` into ``filters.before`` (a notice if it is not a cursor)."""
    if not text:
        return
    at, sep, ident = text.partition("~")
    try:
        moment = float(at)
    except ValueError:
        moment = -1.0
    if not sep or not ident or moment < 0 or len(ident) > 64:
        filters.notices.append("The page link was damaged; showing the newest instead.")
        return
    filters.before = (moment, ident)


def event_query(
    params: Mapping[str, str], *, now: float | None = None
) -> tuple[EventQuery, Filters]:
    """The events page's filters (state, source, repo, worker, window, q, before)."""
    filters = Filters()
    state = _choice(params, "state", [s.value for s in EventState], filters)
    window = _choice(params, "window", list(WINDOWS), filters)
    for key in ("source", "repo", "worker"):
        value = params.get(key, "").strip()[:200]
        if value:
            filters.values[key] = value
    search = params.get("q", "").strip()[:MAX_SEARCH]
    if search:
        filters.values["q"] = search
    read_cursor(params.get("before", ""), filters)
    moment = time.time() if now is None else now
    query = EventQuery(
        state=EventState(state) if state else None,
        source=filters.values.get("source", ""), repo=filters.values.get("repo", ""),
        worker=filters.values.get("worker", ""),
        since=moment - WINDOWS[window] if window else None,
        search=search, before=filters.before, limit=PAGE_SIZE + 1,
    )  # fmt: skip
    return query, filters


def task_filters(params: Mapping[str, str]) -> tuple[TaskState | None, str, Filters]:
    """The tasks page's filters (state, worker, before)."""
    filters = Filters()
    state = _choice(params, "state", [s.value for s in TaskState], filters)
    worker = params.get("worker", "").strip()[:200]
    if worker:
        filters.values["worker"] = worker
    read_cursor(params.get("before", ""), filters)
    return (TaskState(state) if state else None), worker, filters


def _choice(params: Mapping[str, str], key: str, allowed: list[str], filters: Filters) -> str:
    value = params.get(key, "").strip()
    if not value:
        return ""
    if value not in allowed:
        filters.notices.append(f'"{value[:40]}" is not a {key} filter; it was left out.')
        return ""
    filters.values[key] = value
    return value
