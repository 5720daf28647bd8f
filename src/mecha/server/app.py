"""``create_app``: the ASGI application, given its collaborators (no wiring happens here);
``serve_app``: the application over what ``mecha.app.serve.Ingest`` built."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from mecha.server.docs import STATIC
from mecha.server.openapi import openapi_document
from mecha.server.routes import API_ROUTES, ApiRoute
from mecha.server.state import AppState, error_response
from mecha.server.ui.access import UiState
from mecha.server.ui.routes import ROUTES as UI_ROUTES
from mecha.server.ui.session import Sessions

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
        worker_figures=lambda: workers.dispatcher.by_worker, worker_load=workers.dispatcher.load,
        budget_limits=workers.dispatcher.budget_limits,
        container_logs=ingest.worker_logs, forge_web=ingest.forge_web,
        operator=ingest.operator,
    )  # fmt: skip
    return create_app(state, startup=ingest.startup, shutdown=ingest.shutdown, pages=UI_ROUTES)


def create_app(
    state: AppState,
    *,
    startup: Callable[[], Awaitable[None]],
    shutdown: Callable[[], Awaitable[None]],
    routes: Sequence[ApiRoute] = API_ROUTES,
    pages: Sequence[BaseRoute] = (),
) -> Starlette:
    """The app; ``startup`` runs before the first request, ``shutdown`` after the last.

    Its API is ``routes`` (``mecha.server.routes``: each route with its description, which
    ``/openapi.json`` shows); ``pages`` are HTML routes outside the API (the dashboard:
    made with ``include_in_schema=False``); ``/static`` serves ``mecha.server.docs.STATIC``.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await startup()
        try:
            yield
        finally:
            await shutdown()

    app = Starlette(
        routes=[
            *(route.route() for route in routes),
            *pages,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.mecha = state
    app.state.openapi = functools.cache(lambda: openapi_document(routes))
    app.state.ui = UiState(sessions=Sessions(state.api_key))
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """404/405 and friends as JSON, like every other answer."""
    assert isinstance(exc, HTTPException)
    routes = "the routes are listed at /docs (and /openapi.json)"
    hint = routes if exc.status_code in (404, 405) else ""
    return error_response(exc.status_code, str(exc.detail), hint)


async def _server_error(request: Request, exc: Exception) -> Response:
    """A bug: JSON 500 without internals (the traceback goes to the server log)."""
    return error_response(500, "internal error", "see the server log; report it if it repeats")
