"""``GET /ui/stream``: server-sent events telling open pages what changed.

Every second the stream asks the store what changed since it last looked
(``Store.recent_changes``: an index range, whichever node made the change) and, if
anything did, sends one ``change`` message: the ids of the events and tasks that changed
(each task with its event's id). The page decides whether that concerns it and fetches
itself again (``static/ui/app.js``). A comment every 15 seconds keeps proxies from closing
the connection; a stream ends when the server stops, and after STREAM_LIFETIME (the
browser reconnects by itself).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mecha.server.api import store_call
from mecha.server.state import AppState
from mecha.server.ui.access import Page, page

#: how often the store is asked (seconds)
TICK = 1.0
#: a keep-alive comment after this much silence (seconds)
KEEPALIVE = 15.0
#: a stream ends after this long; EventSource opens a new one (seconds)
STREAM_LIFETIME = 300.0
#: how far back the first look reaches, for changes made as the page loaded (seconds)
OVERLAP = 2.0


@page
async def stream(request: Request, current: Page) -> Response:
    """The change stream of one open page."""
    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(
        changes(current.state, request), media_type="text/event-stream", headers=headers
    )


async def changes(state: AppState, request: Request) -> AsyncIterator[str]:
    """``retry:`` first, then a ``change`` message whenever something changed."""
    yield "retry: 2000\n\n"
    after = time.time() - OVERLAP
    started = quiet_since = time.monotonic()
    while not _ending(state, started):
        if await request.is_disconnected():
            return
        found = await store_call(state, state.store.recent_changes, after=after, limit=200)
        if isinstance(found, tuple) and (found[0] or found[1]):
            rows, tasks = found
            # the store answers ties whole: the next look starts at the last change seen
            after = max(after, *(r.event.updated_at for r in rows), *(t.updated_at for t in tasks))
            message = {
                "events": [r.event.id for r in rows],
                "tasks": [[t.id, t.event_id, t.worker] for t in tasks],
            }
            yield f"event: change\ndata: {json.dumps(message)}\n\n"
            quiet_since = time.monotonic()
        if time.monotonic() - quiet_since > KEEPALIVE:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(TICK)


def _ending(state: AppState, started: float) -> bool:
    return state.stopping.is_set() or time.monotonic() - started > STREAM_LIFETIME
