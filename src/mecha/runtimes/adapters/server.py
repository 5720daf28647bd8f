"""The adapter shim: a model API made reachable through the worker contract (upstream §11).

``start_adapter`` serves, on ``127.0.0.1:<free port>`` inside the running event loop:

* ``GET /health`` → 200 ``ok`` while the model API answers its own health check
  (remembered for HEALTH_TTL seconds), else 503 ``{"error": "upstream unavailable: …"}``;
* ``POST /task`` → reads ``prompt`` (400 if missing, 413 over 10 MB), refuses work beyond the
  concurrency cap (429 ``{"error": "worker busy"}``), answers 200 with the result
  contract, 503 (with ``Retry-After`` when known) on a transient failure and 500 on a
  permanent one; with a key configured, ``Authorization: Bearer <key>`` is required (401).
  While a streamed answer comes in, its token count so far is kept under the task's
  ``id`` in ``counts`` (``mecha.runtimes.token_counts``), where `mecha serve` reads it.

so ``mecha worker ls`` and the dispatch engine treat an adapter like any other worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from mecha.errors import MechaError
from mecha.result import result_json
from mecha.runtimes.adapters.call import ModelTarget, call_model, check_model, target_for
from mecha.runtimes.contract import WorkerFailure
from mecha.runtimes.token_counts import COUNTS, TokenCounts
from mecha.waits import sane_wait

if TYPE_CHECKING:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from mecha.worker.spec import AdapterSpec

log = logging.getLogger(__name__)
#: the adapter's name inside its own uvicorn task (see _LifecycleAtDebug)
_ADAPTER_SERVER = contextvars.ContextVar("adapter_server", default="")


class _LifecycleAtDebug(logging.Filter):
    """uvicorn's INFO lines from an adapter's own server ("Started server process",
    "Shutting down") become DEBUG lines: `mecha serve`'s own server says them once."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = _ADAPTER_SERVER.get()
        if not name or record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg = f"adapter {name.replace('%', '%%')}: {record.msg}"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_LIFECYCLE_AT_DEBUG = _LifecycleAtDebug()

#: how long an upstream health answer is reused
HEALTH_TTL = 3.0
#: the largest POST /task body accepted
MAX_TASK_BYTES = 10 * 1024 * 1024
#: upstream's fixed client timeout for a task, when the caller gives none
DEFAULT_TIMEOUT = 600.0
#: how long closing waits for running tasks before cancelling them
GRACE_SECONDS = 5


class AdapterStartError(MechaError):
    """An adapter's shim could not be started."""


@dataclass(frozen=True, slots=True)
class RunningAdapter:
    """A started shim: its base URL and how to stop it (idempotent)."""

    url: str
    close: Callable[[], Awaitable[None]]


@dataclass
class _Shim:
    target: ModelTarget
    client: httpx.AsyncClient
    api_key: str
    concurrency: int
    timeout: float
    counts: TokenCounts = field(default_factory=lambda: COUNTS)
    active: int = 0
    health: tuple[float, str] = field(default=(-math.inf, ""))

    async def upstream_problem(self) -> str:
        checked, reason = self.health
        if time.monotonic() - checked > HEALTH_TTL:
            reason = await check_model(self.client, self.target)
            self.health = (time.monotonic(), reason)
        return reason

    def authorized(self, request: Request) -> bool:
        if not self.api_key:
            return True
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.api_key}".encode())


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_task(request: Request) -> tuple[str, str] | Response:
    """The task's (prompt, id), or the 4xx answer that says what is wrong with the request.

    The id (sent by Mecha's dispatcher) is optional: "" when absent or not text.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_TASK_BYTES:
        return _error(413, f"the task is larger than {MAX_TASK_BYTES // (1024 * 1024)} MB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_TASK_BYTES:
            return _error(413, f"the task is larger than {MAX_TASK_BYTES // (1024 * 1024)} MB")
    try:
        data = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        return _error(400, f"the task is not valid JSON: {exc}")
    prompt = data.get("prompt") if isinstance(data, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        return _error(400, 'the task has no "prompt" (a non-empty string)')
    task_id = data.get("id")
    return prompt, task_id if isinstance(task_id, str) else ""


def _app(shim: _Shim) -> Starlette:
    """The ASGI app for one adapter."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def health(request: Request) -> Response:
        reason = await shim.upstream_problem()
        if reason:
            return _error(503, f"upstream unavailable: {reason}")
        return PlainTextResponse("ok")

    async def task(request: Request) -> Response:
        if not shim.authorized(request):
            return _error(401, "missing or wrong API key (Authorization: Bearer <key>)")
        read = await _read_task(request)
        if not isinstance(read, tuple):
            return read
        prompt, task_id = read
        if shim.active >= shim.concurrency:
            return _error(429, "worker busy")
        shim.active += 1
        on_tokens = shim.counts.reporter(task_id) if task_id else None
        try:
            result = await call_model(
                shim.client, shim.target, prompt, timeout=shim.timeout, on_tokens=on_tokens
            )
        except WorkerFailure as exc:
            return _failure(exc)
        except Exception as exc:  # a bug must not take the shim down
            log.error("adapter task failed unexpectedly: %s: %s", type(exc).__name__, exc)
            return _error(500, f"internal error in the adapter: {type(exc).__name__}: {exc}")
        finally:
            shim.active -= 1
            if task_id:
                shim.counts.finish(task_id)
        return JSONResponse(result_json(result))

    return Starlette(
        routes=[Route("/health", health, methods=["GET"]), Route("/task", task, methods=["POST"])]
    )


def _failure(exc: WorkerFailure) -> Response:
    if not exc.transient:
        return _error(500, exc.message)
    headers = {}
    wait = sane_wait(exc.retry_after)  # an adapter's own inf or nan must not crash the answer
    if wait is not None:
        headers["Retry-After"] = str(math.ceil(wait))
    return _error(503, exc.message, headers)


async def start_adapter(
    name: str,
    spec: AdapterSpec,
    *,
    api_key: str,
    concurrency: int,
    client: httpx.AsyncClient | None = None,
    upstream_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    counts: TokenCounts = COUNTS,
) -> RunningAdapter:
    """Serve adapter ``name`` on 127.0.0.1; ``api_key`` is the key the shim demands.

    ``upstream_key`` (a resolved ``token:``) replaces ``spec.api_key`` for the model API;
    ``timeout`` bounds each task; ``counts`` hears streamed answers' token counts by task
    id. A ``type: local`` adapter starts (or shares) the embedded model first; other types
    must pass the SSRF check. A client passed in is left open on close; one made here is
    closed.
    """
    import httpx

    from mecha.runtimes.adapters.local_model import start_local_model
    from mecha.runtimes.adapters.ssrf import check_upstream_async

    cleanup: list[Callable[[], Awaitable[None]]] = []
    try:
        if spec.type == "local":
            local = await start_local_model(spec.model)
            cleanup.append(local.release)
            target = target_for(spec, api_key="", upstream=local.url, model=local.alias)
        else:
            await check_upstream_async(spec.upstream)
            target = target_for(spec, api_key=upstream_key)
        if client is None:
            # the embedded model answers plain HTTP on loopback: no TLS context to load
            verify = spec.type != "local"
            client = httpx.AsyncClient(trust_env=False, verify=verify)
            cleanup.append(client.aclose)
        shim = _Shim(target, client, api_key, max(1, concurrency), timeout, counts)
        url, stop = await _serve(_app(shim), name)
        cleanup.append(stop)
    except BaseException:
        await _run_all(cleanup)
        raise
    return RunningAdapter(url=url, close=_once(cleanup))


def _once(cleanup: list[Callable[[], Awaitable[None]]]) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        steps, cleanup[:] = list(cleanup), []
        await _run_all(steps)

    return close


async def _run_all(steps: list[Callable[[], Awaitable[None]]]) -> None:
    """Undo in reverse order; one failing step does not stop the others."""
    for step in reversed(steps):
        try:
            await step()
        except Exception as exc:
            log.warning("closing an adapter: %s: %s", type(exc).__name__, exc)


async def _serve(app: Any, name: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Run ``app`` with uvicorn on 127.0.0.1:<free port> in this loop until stopped."""
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Quiet(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.access_log = False  # no access log, without touching the logging setup

    class Config(uvicorn.Config):
        def configure_logging(self) -> None:  # the host process owns logging
            return

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # ... and its signals
            yield

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            _ADAPTER_SERVER.set(name)  # this server's own task only
            await super().serve(sockets)

    logging.getLogger("uvicorn.error").addFilter(_LIFECYCLE_AT_DEBUG)  # no-op if there
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = Config(app, http=Quiet, lifespan="off", timeout_graceful_shutdown=GRACE_SECONDS)
    server = Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name=f"adapter {name}")
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if not server.started:
        sock.close()
        problem = serving.exception() if not serving.cancelled() else None
        raise AdapterStartError(
            f"the adapter {name} could not start its HTTP server: {problem or 'it stopped'}",
            hint="see the log above for uvicorn's reason",
        )
    host, port = sock.getsockname()[:2]

    async def stop() -> None:
        server.should_exit = True
        await serving

    return f"http://{host}:{port}", stop
