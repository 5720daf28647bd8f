"""The dashboard's routes, mounted at ``/ui`` by ``create_app`` (``/`` redirects here)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mecha.server.ui import access, action_pages, event_pages, ops_pages, task_pages
from mecha.server.ui.stream import stream


async def home(request: Request) -> Response:
    """``/`` and ``/ui``: the events page."""
    return RedirectResponse("/ui/events", status_code=307)


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/ui", home, methods=["GET"]),
    Route("/ui/", home, methods=["GET"]),
    Route("/ui/login", access.login_form, methods=["GET"]),
    Route("/ui/login", access.login, methods=["POST"]),
    Route("/ui/logout", access.logout, methods=["POST"]),
    Route("/ui/events", event_pages.events, methods=["GET"]),
    Route("/ui/events/{event_id}", event_pages.event, methods=["GET"]),
    Route("/ui/tasks", task_pages.tasks, methods=["GET"]),
    Route("/ui/tasks/{task_id}", task_pages.task, methods=["GET"]),
    Route("/ui/workers", ops_pages.workers, methods=["GET"]),
    Route("/ui/workers/{name}", ops_pages.worker, methods=["GET"]),
    Route("/ui/writes", ops_pages.writes, methods=["GET"]),
    Route("/ui/system", ops_pages.system, methods=["GET"]),
    Route("/ui/confirm", action_pages.confirm, methods=["GET"]),
    Route("/ui/act", action_pages.act, methods=["POST"]),
    Route("/ui/stream", stream, methods=["GET"]),
]
