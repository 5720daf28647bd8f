"""The operator's actions over HTTP (``mecha.engine.operator``), each needing the API key:

- ``POST /task/{task_id}/retry`` and ``POST /task/{task_id}/cancel`` → the task's JSON;
- ``POST /event/{event_id}/writes/retry`` (optional JSON body ``{"key": "<ledger key>"}``)
  → the reopened writes' JSON;
- ``POST /event/{event_id}/replay`` → 202, the new event's JSON, ``Location`` of it;
- ``POST /worker/{name}/start`` and ``POST /worker/{name}/stop`` → the worker's JSON.

Who did it is recorded as ``API (<client address>)``, or ``<by> via API (<address>)`` when
the optional JSON body names ``"by"`` (`mecha event replay` sends the CLI user). A refusal
is ``{"error", "hint"}``: 404 for what does not exist, 409 for a state that does not allow
it, 400 for a body that cannot be used, 502 when a worker or Docker failed to start,
503 when the store cannot be used.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mecha.engine.operator import Operator
from mecha.errors import (
    EventNotFound,
    MechaError,
    RegistryError,
    StoreError,
    TaskNotFound,
    TaskStateError,
    UsageError,
    WorkerNotFound,
    WriteNotFound,
    WriteStateError,
)
from mecha.event import event_json
from mecha.server.api import requires_key
from mecha.server.state import AppState, error_response, read_body
from mecha.server.workers_api import worker_json
from mecha.store import WorkerRecord
from mecha.task import Task, task_json

#: the largest action body read (it holds a key or a name at most)
MAX_BODY = 16 * 1024
#: the longest ``by`` kept
MAX_BY = 100
#: an action's optional JSON body
Body = dict[str, Any]


@requires_key
async def retry_task(request: Request) -> Response:
    """A failed or cancelled task back to pending, attempts reset."""

    async def act(op: Operator, who: str, task_id: str, _: Body) -> Any:
        return await _sync(request, op.retry_task, task_id, who=who)

    return await _act(request, "task_id", act, shown=_task)


@requires_key
async def cancel_task(request: Request) -> Response:
    """A pending or running task cancelled."""

    async def act(op: Operator, who: str, task_id: str, _: Body) -> Any:
        return await _sync(request, op.cancel_task, task_id, who=who)

    return await _act(request, "task_id", act, shown=_task)


@requires_key
async def retry_writes(request: Request) -> Response:
    """The event's failed and dead-lettered writes (or the one of ``key``) tried again."""

    async def act(op: Operator, who: str, event_id: str, body: Body) -> Any:
        key = body.get("key", "")
        if not isinstance(key, str):
            raise UsageError('"key" is not text', hint='send {"key": "<a write\'s ledger key>"}')
        return await _sync(request, op.retry_writes, event_id, who=who, key=key)

    return await _act(request, "event_id", act, shown=lambda done, _: [w.as_json() for w in done])


@requires_key
async def replay_event(request: Request) -> Response:
    """A new event from the stored one, matched by today's workers: 202 and where it is."""

    async def act(op: Operator, who: str, event_id: str, _: Body) -> Any:
        return await op.replay_event(event_id, who=who)

    answer = await _act(request, "event_id", act, shown=lambda made, _: event_json(made),
                        status=202)  # fmt: skip
    if answer.status_code == 202:
        made = json.loads(bytes(answer.body))
        answer.headers["location"] = f"/event/{made['id']}"
    return answer


@requires_key
async def start_worker(request: Request) -> Response:
    """Start a worker the way serve runs its kind."""

    async def act(op: Operator, who: str, name: str, _: Body) -> Any:
        return await op.start_worker(name, who=who)

    return await _act(request, "name", act, shown=_worker)


@requires_key
async def stop_worker(request: Request) -> Response:
    """Stop a worker: its new tasks wait until it is started again."""

    async def act(op: Operator, who: str, name: str, _: Body) -> Any:
        return await op.stop_worker(name, who=who)

    return await _act(request, "name", act, shown=_worker)


def _task(task: Task, _: AppState) -> Any:
    return task_json(task)


def _worker(record: WorkerRecord, state: AppState) -> Any:
    return worker_json(record, state.redactor)


async def _act(
    request: Request,
    param: str,
    act: Callable[[Operator, str, str, Body], Awaitable[Any]],
    *,
    shown: Callable[[Any, AppState], Any],
    status: int = 200,
) -> Response:
    state: AppState = request.app.state.mecha
    if state.operator is None:
        return error_response(503, "this server takes no actions", "restart mecha serve")
    body = await _body(request)
    if isinstance(body, Response):
        return body
    by = body.get("by", "")
    if not isinstance(by, str):
        return error_response(400, '"by" is not text', 'send {"by": "<your name>"} or no body')
    address = request.client.host if request.client else "unknown address"
    by = " ".join(by.split())[:MAX_BY]
    who = f"{by} via API ({address})" if by else f"API ({address})"
    try:
        done = await act(state.operator, who, request.path_params[param], body)
    except MechaError as exc:
        redact = state.redactor.redact
        return error_response(status_of(exc), redact(exc.message), redact(exc.hint))
    return JSONResponse(shown(done, state), status_code=status)


async def _body(request: Request) -> Body | Response:
    """The optional JSON object body ({} when there is none)."""
    raw = await read_body(request, limit=MAX_BODY)
    if isinstance(raw, Response):
        return raw
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return error_response(
            400, "the body is not a JSON object", 'send no body, or e.g. {"key": "..."}'
        )
    return body


async def _sync(request: Request, call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """A blocking operator call, off the event loop (on the read pool, as ``POST /task``)."""
    state: AppState = request.app.state.mecha
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(state.reads, functools.partial(call, *args, **kwargs))


def status_of(error: MechaError) -> int:
    """The HTTP status a refusal or failure answers with."""
    if isinstance(error, EventNotFound | TaskNotFound | WorkerNotFound | WriteNotFound):
        return 404
    if isinstance(error, TaskStateError | WriteStateError | RegistryError):
        return 409
    if isinstance(error, UsageError):
        return 400
    if isinstance(error, StoreError):
        return 503
    return 502  # a worker's health check or its container failed
