"""The dashboard's routes, mounted at ``/ui`` by ``create_app`` (``/`` redirects here)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mecha.server.ui import access, action_pages, event_pages, ops_pages, task_pages
from mecha.server.ui.access import Endpoint
from mecha.server.ui.stream import stream


async def home(request: Request) -> Response:
    """``/`` and ``/ui``: the events page."""
    return RedirectResponse("/ui/events", status_code=307)


def _page(path: str, endpoint: Endpoint, method: str = "GET") -> Route:
    """A dashboard route: HTML, outside the API's OpenAPI document."""
    return Route(path, endpoint, methods=[method], include_in_schema=False)


ROUTES = [
    _page("/", home), _page("/ui", home), _page("/ui/", home),
    _page("/ui/login", access.login_form), _page("/ui/login", access.login, "POST"),
    _page("/ui/logout", access.logout, "POST"),
    _page("/ui/events", event_pages.events), _page("/ui/events/{event_id}", event_pages.event),
    _page("/ui/tasks", task_pages.tasks), _page("/ui/tasks/{task_id}", task_pages.task),
    _page("/ui/workers", ops_pages.workers), _page("/ui/workers/{name}", ops_pages.worker),
    _page("/ui/writes", ops_pages.writes), _page("/ui/system", ops_pages.system),
    _page("/ui/confirm", action_pages.confirm), _page("/ui/act", action_pages.act, "POST"),
    _page("/ui/stream", stream),
]  # fmt: skip
