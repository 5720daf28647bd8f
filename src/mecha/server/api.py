"""The JSON API: ``GET /health``, ``GET /events``, ``GET /event/{id}`` (upstream's paths),
and what every API route shares: ``requires_key`` and ``store_call``.

``/health`` is always open; the rest need the API key when one is set
(``Authorization: Bearer <key>`` or ``X-API-Key``), compared in constant time, and answer
403 when the API is closed (a non-loopback address without a key: ``closed_api``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mecha import __version__
from mecha.engine.leases import DEFAULT_LEASE
from mecha.errors import EventNotFound, StoreError
from mecha.event import EventState, event_json
from mecha.server.models import HealthJson, NodeJson, event_detail_json
from mecha.server.state import (
    AppState,
    closed_api,
    error_response,
    key_matches,
    presented_key,
)
from mecha.store import NodeRecord

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_LIMIT = 1000


def requires_key(endpoint: Endpoint) -> Endpoint:
    """Refuse with 403 while the API is closed, and with 401 unless the request carries the
    server's API key (if it has one)."""

    @functools.wraps(endpoint)
    async def checked(request: Request) -> Response:
        state: AppState = request.app.state.mecha
        if (closed := closed_api(state)) is not None:
            return closed
        if not key_matches(state.api_key, presented_key(request)):
            return error_response(
                401,
                "this API needs the server's API key",
                "send Authorization: Bearer <key> or X-API-Key: <key>",
            )
        return await endpoint(request)

    return checked


async def health(request: Request) -> Response:
    """Liveness and what the ingest path and the dispatcher have done so far; the nodes
    too, for a caller with the API key (or any caller on an open loopback API)."""
    state: AppState = request.app.state.mecha
    shown: HealthJson = {
        "status": "ok",
        "version": __version__,
        "events_stored": state.pipeline.stored,
        "commit_batches": state.pipeline.commits,
        "events_matched": state.pipeline.matched,
    }
    lease = DEFAULT_LEASE
    figures: dict[str, Any] = {}
    if state.dispatch_stats is not None:
        figures = dict(state.dispatch_stats())
        lease = figures.get("node_lease_ms", lease * 1000) / 1000
    # the nodes name hosts and pids: only for callers the API itself would answer
    if closed_api(state) is None and key_matches(state.api_key, presented_key(request)):
        nodes = await store_call(state, state.store.list_nodes)
        if isinstance(nodes, list):  # else the store cannot be read: /health still answers
            shown["nodes"] = [node_json(node, now=time.time(), lease=lease) for node in nodes]
    return JSONResponse({**shown, **figures})


def node_json(node: NodeRecord, *, now: float, lease: float) -> NodeJson:
    """A node as /health shows it: its id, state, heartbeat age (s) and tasks in flight."""
    return {
        "id": node.id, "host": node.host, "pid": node.pid,
        "state": node.state(now=now, lease=lease),
        "heartbeat_age": round(max(0.0, now - node.heartbeat_at), 1),
        "in_flight": node.in_flight,
    }  # fmt: skip


@requires_key
async def list_events(request: Request) -> Response:
    """Events newest first; ``?state=`` filters, ``?limit=`` (default 100, max 1000)."""
    state: AppState = request.app.state.mecha
    wanted = request.query_params.get("state")
    try:
        event_state = EventState(wanted) if wanted else None
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        states = ", ".join(s.value for s in EventState)
        return error_response(400, "state or limit is not valid", f"state is one of {states}")
    limit = max(1, min(limit, MAX_LIMIT))
    events = await store_call(state, state.store.list_events, state=event_state, limit=limit)
    if isinstance(events, Response):
        return events
    return JSONResponse([event_json(event) for event in events])


@requires_key
async def show_event(request: Request) -> Response:
    """One event with its headers, raw body, match decisions, tasks, timeline and writes."""
    state: AppState = request.app.state.mecha
    event_id = request.path_params["event_id"]
    try:
        event = await store_call(state, state.store.get_event, event_id)
    except EventNotFound as exc:
        return error_response(404, exc.message, exc.hint)
    if isinstance(event, Response):
        return event
    matches = await store_call(state, state.store.list_matches, event.id)
    tasks = await store_call(state, state.store.list_tasks, event_id=event.id)
    steps = await store_call(state, state.store.list_timeline, event_id=event.id)
    writes = await store_call(state, state.store.list_writes, event_id=event.id)
    if any(isinstance(part, Response) for part in (matches, tasks, steps, writes)):
        return error_response(503, "the store cannot be read", "see the server log")
    return JSONResponse(event_detail_json(event, matches, tasks, steps, writes))


async def store_call(app: AppState, call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking store call off the event loop; a StoreError becomes a 503 response.

    Other errors (EventNotFound, TaskNotFound…) are raised for the route to answer.
    """
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(app.reads, functools.partial(call, *args, **kwargs))
    except StoreError as exc:
        return error_response(503, exc.message, exc.hint)
