"""What the routes share (built once by the composition root), the JSON error shape, and
reading a request body under a size cap."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from mecha.redaction import Redactor, Redacts

if TYPE_CHECKING:
    from mecha.budget import BudgetLimit
    from mecha.engine.histogram import Histogram
    from mecha.engine.operator import Operator
    from mecha.engine.pipeline import Pipeline
    from mecha.engine.worker_figures import WorkerFigures
    from mecha.forges.sources import SourceHandler
    from mecha.store import Store, WorkerRecord
    from mecha.task import Task


@dataclass(kw_only=True)
class AppState:
    """The server's collaborators."""

    store: Store
    #: receive → store → match → dispatch
    pipeline: Pipeline
    sources: Mapping[str, SourceHandler]
    #: runs blocking store reads off the event loop
    reads: Executor
    api_key: str = ""
    #: serve listens beyond loopback without a key: every API route (and /metrics) is 403
    api_closed: bool = False
    #: hands tasks just created to the dispatcher, so they go out at once (None: the
    #: dispatcher's poll of the store finds them)
    dispatch: Callable[[Sequence[Task]], None] | None = None
    #: masks secret values and token shapes in what the API shows (worker definitions)
    redactor: Redacts = field(default_factory=Redactor)
    #: the worker `POST /task` without a worker picked last (round robin by name)
    last_picked: str = ""
    #: the dispatcher's figures for /health (queued, in flight, sent, retried, ...)
    dispatch_stats: Callable[[], Mapping[str, int]] | None = None
    #: the dispatcher's latency histogram for /metrics
    dispatch_latency: Callable[[], Histogram] | None = None
    #: the dispatcher's counts and latencies by worker, for /metrics
    worker_figures: Callable[[], WorkerFigures] | None = None
    #: (queued, in flight) by worker, for /metrics
    worker_load: Callable[[], Mapping[str, tuple[int, int]]] | None = None
    #: the budgets to show, by scope (``GET /budgets``, /metrics); None: none
    budget_limits: Callable[[], Mapping[str, BudgetLimit]] | None = None
    #: the last lines of a managed worker's container log (the dashboard's worker page);
    #: None: not reachable here
    container_logs: Callable[[WorkerRecord, int], str] | None = None
    #: set when the server begins to stop, so the dashboard's live streams end
    stopping: threading.Event = field(default_factory=threading.Event)
    #: each forge's web address (the dashboard links to what a write made)
    forge_web: Mapping[str, str] = field(default_factory=dict)
    #: the operator's actions (retry, cancel, replay, start, stop); None: not offered
    operator: Operator | None = None


def error_response(status: int, message: str, hint: str = "") -> JSONResponse:
    """``{"error": message, "hint": hint}`` with ``status``."""
    body = {"error": message, "hint": hint} if hint else {"error": message}
    return JSONResponse(body, status_code=status)


#: how to open a closed API (``closed_api``'s hint, and serve's start line)
OPEN_API_HINT = (
    "start mecha serve with --api-key KEY, MECHA_API_KEY=KEY or api_key: in config.yml "
    "(generate one with: openssl rand -hex 24), or listen on 127.0.0.1"
)


def closed_api(state: AppState) -> JSONResponse | None:
    """The 403 every API route answers while the API is closed (serve listens beyond
    loopback without a key), else None. The webhooks and ``/health`` never ask."""
    if not state.api_closed:
        return None
    return error_response(
        403,
        "the API is closed: this server listens beyond loopback without an API key "
        "(webhooks and /health stay open)",
        OPEN_API_HINT,
    )


def presented_key(request: Request) -> str:
    """The API key the caller sent: ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.headers.get("x-api-key", "")


def key_matches(expected: str, presented: str) -> bool:
    """Constant-time comparison; an empty expected key accepts everything."""
    if not expected:
        return True
    return hmac.compare_digest(expected.encode(), presented.encode())


async def read_body(request: Request, *, limit: int) -> bytes | JSONResponse:
    """The body, or the error to answer: 413 over ``limit`` bytes, 400 if it was cut short."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        return error_response(400, "the request ended before its body did", "send it again")
    return b"".join(chunks)


def _too_large(limit: int) -> JSONResponse:
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return error_response(413, f"the body is larger than {size}", "send a smaller body")
