"""The events list (filters, search, keyset pages) and an event's own page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mecha.errors import EventNotFound
from mecha.event import EventState
from mecha.server.api import store_call
from mecha.server.ui.access import Page, page, refused_page
from mecha.server.ui.filters import PAGE_SIZE, WINDOWS, cursor_text, event_query
from mecha.server.ui.render import render
from mecha.server.ui.views import (
    attribute_rows,
    decisions,
    event_label,
    tone,
    write_link,
    write_summary,
)
from mecha.task import TaskState

UNREADABLE = ("The store cannot be read right now.", "See the server log; reload in a moment.")


@page
async def events(request: Request, current: Page) -> Response:
    """``GET /ui/events``: newest first, PAGE_SIZE a page, filtered and searched."""
    state = current.state
    query, filters = event_query(request.query_params)
    rows = await store_call(state, state.store.event_page, query)
    workers = await store_call(state, state.store.list_workers)
    if isinstance(rows, Response) or isinstance(workers, Response):
        return refused_page(state, 503, *UNREADABLE)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    older = ""
    if more:
        last = rows[-1].event
        older = cursor_text(last.created_at, last.id)
    context = current.context(
        rows=rows, filters=filters, older=older, first=filters.before is None,
        states=[s.value for s in EventState], windows=list(WINDOWS),
        sources=sorted(state.sources), worker_names=[w.name for w in workers],
        label=event_label, tone=tone, live="list", title="Events",
    )  # fmt: skip
    return render(state.redactor, "events.html", context)


@page
async def event(request: Request, current: Page) -> Response:
    """``GET /ui/events/{id}``: attributes, decisions, tasks, policy, writes, timeline."""
    state = current.state
    try:
        found = await store_call(state, state.store.get_event, request.path_params["event_id"])
    except EventNotFound as exc:
        return refused_page(state, 404, exc.message, "Find it on the events page.")
    if isinstance(found, Response):
        return refused_page(state, 503, *UNREADABLE)
    store = state.store
    parts = [
        await store_call(state, store.list_matches, found.id),
        await store_call(state, store.list_tasks, event_id=found.id),
        await store_call(state, store.list_timeline, event_id=found.id),
        await store_call(state, store.list_writes, event_id=found.id),
    ]
    if any(isinstance(part, Response) for part in parts):
        return refused_page(state, 503, *UNREADABLE)
    matches, tasks, steps, writes = parts
    policy = decisions(steps)
    context = current.context(
        event=found, label=event_label(found), attrs=attribute_rows(found.attrs),
        headers=sorted(found.headers.items()), matches=matches, tasks=tasks, steps=steps,
        writes=[(w, write_link(w, state.forge_web), write_summary(w)) for w in writes],
        policy={t.id: [d for d in policy if d.task_id == t.id] for t in tasks},
        stuck_writes=[w for w in writes if w.state.value in ("failed", "dead-letter")],
        tone=tone, live=f"event:{found.id}", title=f"Event {found.id[:8]}",
        retryable=RETRYABLE, cancellable=CANCELLABLE, raw=_raw_text(found.raw),
    )  # fmt: skip
    return render(state.redactor, "event.html", context)


#: the task states the retry and cancel buttons show for
RETRYABLE = frozenset({TaskState.FAILED, TaskState.CANCELLED})
CANCELLABLE = frozenset({TaskState.PENDING, TaskState.RUNNING})
#: the most of a raw body a page shows
MAX_RAW = 64 * 1024


def _raw_text(raw: bytes) -> str:
    text = raw[:MAX_RAW].decode("utf-8", errors="replace")
    return text + ("\n… (cut)" if len(raw) > MAX_RAW else "")
