"""Tasks over HTTP: ``POST /task``, ``GET /task/{id}``, ``GET /tasks`` (upstream §14).

``POST /task`` checks the request and the worker before anything is written: a named
worker must be registered and not offline; without a name, the next worker that is
online (or busy) by name takes it, round robin. The task is committed, handed to the
dispatcher, and answered ``202`` with its JSON. Every refusal says what was wrong and
what to do. All three routes need the API key when one is set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mecha.errors import TaskNotFound
from mecha.result import kind_of
from mecha.server.api import MAX_LIMIT, requires_key, store_call
from mecha.server.models import task_detail_json
from mecha.server.state import AppState, error_response, read_body
from mecha.store import WorkerRecord
from mecha.task import NewTask, Task, TaskState, task_json
from mecha.worker.kind import WorkerKind, WorkerState
from mecha.yaml_doc import suggest_key

#: the largest `POST /task` body accepted
MAX_TASK_BODY = 1024 * 1024
FIELDS = ("prompt", "worker", "context")
EXAMPLE = '{"prompt": "Summarise the open issues", "worker": "reviewer"}'
#: states in which a worker takes tasks sent without a worker name
TAKING = frozenset({WorkerState.ONLINE, WorkerState.BUSY})

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """A checked `POST /task` body."""

    prompt: str
    worker: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """A request answered with an error instead of a task."""

    def __init__(self, status: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.response = error_response(status, message, hint)


@requires_key
async def create_task(request: Request) -> Response:
    """Store a task for the named (or the next online) worker and send it on; 202."""
    state: AppState = request.app.state.mecha
    body = await read_body(request, limit=MAX_TASK_BODY)
    if isinstance(body, Response):
        return body
    try:
        asked = parse_task_request(body)
    except Refused as refused:
        return refused.response
    workers = await store_call(state, state.store.list_workers)
    if isinstance(workers, Response):
        return workers
    try:  # no await while choosing: concurrent requests never take the same turn
        worker = choose_worker(state, workers, asked.worker)
    except Refused as refused:
        return refused.response
    new = NewTask(worker=worker, event_id="", prompt=asked.prompt, context=asked.context)
    made = await store_call(state, state.store.create_tasks, [new])
    if isinstance(made, Response):
        return made
    _dispatch(state, made)
    [task] = made
    return JSONResponse(task_json(task), status_code=202, headers={"Location": f"/task/{task.id}"})


@requires_key
async def show_task(request: Request) -> Response:
    """One task (by id or a unique prefix of 6+ characters) with its timeline."""
    state: AppState = request.app.state.mecha
    try:
        task = await store_call(state, state.store.get_task, request.path_params["task_id"])
    except TaskNotFound as exc:
        return error_response(404, exc.message, "list the tasks with GET /tasks")
    if isinstance(task, Response):
        return task
    steps = await store_call(state, state.store.list_timeline, task_id=task.id)
    if isinstance(steps, Response):
        return steps
    writes = await store_call(state, state.store.list_writes, task_id=task.id)
    if isinstance(writes, Response):
        return writes
    return JSONResponse(task_detail_json(task, steps, writes))


@requires_key
async def list_tasks(request: Request) -> Response:
    """Tasks newest first; ``?state=``, ``?worker=``, ``?limit=`` (default 100, max 1000)."""
    state: AppState = request.app.state.mecha
    query = request.query_params
    wanted = query.get("state") or None
    try:
        task_state = TaskState(wanted) if wanted else None
    except ValueError:
        states = ", ".join(s.value for s in TaskState)
        return error_response(400, f'"{wanted}" is not a task state', f"state is one of {states}")
    text = query.get("limit", "100")
    if not text.strip().isdigit():
        return error_response(
            400, f'limit "{text}" is not a number from 1 to {MAX_LIMIT}', "e.g. limit=50"
        )
    tasks = await store_call(
        state, state.store.list_tasks,
        state=task_state,
        worker=query.get("worker") or None,
        limit=max(1, min(int(text), MAX_LIMIT)),
    )  # fmt: skip
    if isinstance(tasks, Response):
        return tasks
    return JSONResponse([task_json(task) for task in tasks])


def parse_task_request(body: bytes) -> TaskRequest:
    """The checked body of `POST /task`; Refused (400) names the first mistake."""
    data = _object(body)
    prompt = data.get("prompt")
    if prompt is None:
        raise Refused(400, "prompt is required", f"send {EXAMPLE}")
    if not isinstance(prompt, str):
        raise Refused(400, f'"prompt" is {_kind(prompt)}; expected a string', f"send {EXAMPLE}")
    if not prompt.strip():
        raise Refused(400, '"prompt" is empty', "send the text the worker should act on")
    worker = data.get("worker")
    if worker is not None and (not isinstance(worker, str) or not worker.strip()):
        raise Refused(
            400,
            f'"worker" is {_kind(worker)}; expected a worker name',
            "name a registered worker, or leave worker out to use the next online one",
        )
    context = data.get("context")
    if context is not None and not isinstance(context, dict):
        raise Refused(
            400,
            f'"context" is {_kind(context)}; expected a JSON object',
            'e.g. "context": {"repo_owner": "octo", "repo_name": "app"}, or leave it out',
        )
    return TaskRequest(prompt=prompt, worker=(worker or "").strip(), context=context or {})


def _object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object of known fields; Refused (400) otherwise."""
    if not body.strip():
        raise Refused(400, "the body is empty", f"send {EXAMPLE}")
    try:
        data = json.loads(body, parse_constant=_no_constant)
        json.dumps(data, ensure_ascii=False).encode()  # lone surrogates ("\\ud800") are not text
    except (ValueError, RecursionError) as exc:
        raise Refused(400, f"the body is not JSON: {_reason(exc)}", f"send {EXAMPLE}") from None
    if not isinstance(data, dict):
        raise Refused(400, f"the body is {_kind(data)}, not a JSON object", f"send {EXAMPLE}")
    for key in data:
        if key not in FIELDS:
            hint = suggest_key(key, FIELDS, listing="a task takes")
            raise Refused(400, f'unknown field "{key}"', hint)
    return data


def choose_worker(state: AppState, workers: Sequence[WorkerRecord], name: str) -> str:
    """The named worker if it can take tasks, else the next one taking them, by name."""
    if name:
        return _named(workers, name)
    taking = [w.name for w in sorted(workers, key=lambda w: w.name) if w.state in TAKING]
    if not taking:
        raise Refused(503, "no online workers", _start_hint(workers))
    later = [n for n in taking if n > state.last_picked]
    state.last_picked = later[0] if later else taking[0]
    return state.last_picked


def _named(workers: Sequence[WorkerRecord], name: str) -> str:
    found = next((w for w in workers if w.name == name), None)
    if found is None:
        names = ", ".join(w.name for w in workers)
        hint = (
            f"registered workers: {names}"
            if names
            else "no worker is registered; add one with mecha worker add FILE"
        )
        raise Refused(404, f'worker "{name}" is not registered', hint)
    if found.state is WorkerState.OFFLINE:
        raise Refused(409, f'worker "{name}" is offline', _offline_hint(found))
    return found.name


def _offline_hint(worker: WorkerRecord) -> str:
    if worker.kind is WorkerKind.ADAPTER:
        return "adapter workers are started by mecha serve itself; see its log for why not"
    if worker.kind is WorkerKind.MANAGED:
        return "managed (Docker) workers are started by a later release; use another worker"
    return f"start it with mecha worker start {worker.name}"


def _start_hint(workers: Sequence[WorkerRecord]) -> str:
    if not workers:
        return "no worker is registered; add one with mecha worker add FILE, then start it"
    states = ", ".join(f"{w.name} ({w.state.value})" for w in workers)
    return f'start one with mecha worker start NAME, or name one with "worker"; now: {states}'


def _dispatch(state: AppState, tasks: Sequence[Task]) -> None:
    """Hand new tasks to the dispatcher; if that fails, its poll of the store finds them."""
    if state.dispatch is None:
        return
    try:
        state.dispatch(tasks)
    except Exception:
        log.exception("handing %d tasks to the dispatcher failed; its poll sends them", len(tasks))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeError):
        return "it is not UTF-8 text"
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    return str(exc)


def _kind(value: Any) -> str:
    if isinstance(value, str) and not value.strip():
        return "an empty string"
    return kind_of(value)
