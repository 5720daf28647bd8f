"""``create_app``: the ASGI application, given its collaborators (no wiring happens here);
``serve_app``: the application over what ``mecha.app.serve.Ingest`` built."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mecha.server import actions_api, api, budgets_api, tasks_api, workers_api
from mecha.server.metrics import metrics
from mecha.server.state import AppState, error_response
from mecha.server.webhooks import receive_webhook

if TYPE_CHECKING:
    from mecha.app.serve import Ingest


def serve_app(ingest: Ingest) -> Starlette:
    """The ASGI app over ``ingest``: its lifespan starts and stops everything serve runs."""
    workers = ingest.workers
    state = AppState(
        store=ingest.store, pipeline=ingest.pipeline, sources=ingest.sources,
        reads=ingest.reads, api_key=ingest.api_key, api_closed=ingest.api_closed,
        dispatch=workers.dispatcher.submit, redactor=ingest.known,
        dispatch_stats=lambda: {
            **workers.dispatcher.stats(), **workers.writeback.stats(), **ingest.ticker.counts
        },
        dispatch_latency=lambda: workers.dispatcher.latency,
        budget_limits=workers.dispatcher.budget_limits, operator=ingest.operator,
    )  # fmt: skip
    return create_app(state, startup=ingest.startup, shutdown=ingest.shutdown)


def create_app(
    state: AppState,
    *,
    startup: Callable[[], Awaitable[None]],
    shutdown: Callable[[], Awaitable[None]],
) -> Starlette:
    """The app; ``startup`` runs before the first request, ``shutdown`` after the last."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await startup()
        try:
            yield
        finally:
            await shutdown()

    app = Starlette(
        routes=[
            Route("/health", api.health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/webhook/{source}", receive_webhook, methods=["POST"]),
            Route("/events", api.list_events, methods=["GET"]),
            Route("/event/{event_id}", api.show_event, methods=["GET"]),
            Route("/task", tasks_api.create_task, methods=["POST"]),
            Route("/task/{task_id}", tasks_api.show_task, methods=["GET"]),
            Route("/tasks", tasks_api.list_tasks, methods=["GET"]),
            Route("/workers", workers_api.list_workers, methods=["GET"]),
            Route("/budgets", budgets_api.list_budgets, methods=["GET"]),
            # --- the operator's actions (server/actions_api.py; branch h-actions) ---
            Route("/task/{task_id}/retry", actions_api.retry_task, methods=["POST"]),
            Route("/task/{task_id}/cancel", actions_api.cancel_task, methods=["POST"]),
            Route("/event/{event_id}/replay", actions_api.replay_event, methods=["POST"]),
            Route("/event/{event_id}/writes/retry", actions_api.retry_writes, methods=["POST"]),
            Route("/worker/{name}/start", actions_api.start_worker, methods=["POST"]),
            Route("/worker/{name}/stop", actions_api.stop_worker, methods=["POST"]),
            # --- end of the operator's actions ---
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.mecha = state
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """404/405 and friends as JSON, like every other answer."""
    assert isinstance(exc, HTTPException)
    routes = "the routes are listed in docs/events.md and docs/tasks.md"
    hint = routes if exc.status_code in (404, 405) else ""
    return error_response(exc.status_code, str(exc.detail), hint)


async def _server_error(request: Request, exc: Exception) -> Response:
    """A bug: JSON 500 without internals (the traceback goes to the server log)."""
    return error_response(500, "internal error", "see the server log; report it if it repeats")
