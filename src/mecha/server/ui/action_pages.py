"""The dashboard's actions: each button asks first (``GET /ui/confirm``, a page that works
without JavaScript), then ``POST /ui/act`` (CSRF-checked) has the Operator do it, which
records it on the timeline with who did it, and the browser goes back with a notice."""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mecha.errors import MechaError
from mecha.server.actions_api import status_of
from mecha.server.api import store_call
from mecha.server.ui.access import Page, action, page, refused_page
from mecha.server.ui.action_words import ACTIONS
from mecha.server.ui.render import SECURITY_HEADERS, render


@page
async def confirm(request: Request, current: Page) -> Response:
    """``GET /ui/confirm?action=&id=&back=``: the question, and a form that does it."""
    name = request.query_params.get("action", "")
    target = request.query_params.get("id", "")[:200]
    kind = ACTIONS.get(name)
    if kind is None or not target:
        return refused_page(current.state, 400, "There is no such action.", "Go back.")
    context = current.context(
        action=name, target=target, kind=kind, question=kind.question.format(id=target),
        back=safe_back(request.query_params.get("back", "")), title="Confirm",
        key=request.query_params.get("key", "")[:300], live="",
    )  # fmt: skip
    return render(current.state.redactor, "confirm.html", context)


@action
async def act(request: Request, current: Page, form: Mapping[str, str]) -> Response:
    """``POST /ui/act``: the action done by the Operator; back to the page with a notice."""
    state = current.state
    name, target = form.get("action", ""), form.get("id", "")
    kind = ACTIONS.get(name)
    if kind is None or not target or state.operator is None:
        return refused_page(state, 400, "There is no such action here.", "Go back.")
    back = safe_back(form.get("back", ""))
    try:
        result = await _perform(state, name, target, form.get("key", ""), current.who)
    except MechaError as exc:
        return refused_page(state, status_of(exc), exc.message, exc.hint or "Go back.")
    if isinstance(result, Response):
        return refused_page(state, 503, "The store cannot be read right now.", "Try again.")
    if name == "event-replay" and hasattr(result, "id"):
        back = f"/ui/events/{result.id}"
    sep = "&" if "?" in back else "?"
    location = f"{back}{sep}{urllib.parse.urlencode({'done': name, 'on': target[:12]})}"
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


async def _perform(state: Any, name: str, target: str, key: str, who: str) -> Any:
    operator = state.operator
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "task-retry": lambda: store_call(state, operator.retry_task, target, who=who),
        "task-cancel": lambda: store_call(state, operator.cancel_task, target, who=who),
        "write-retry": lambda: store_call(state, operator.retry_writes, target, who=who, key=key),
        "worker-start": lambda: operator.start_worker(target, who=who),
        "worker-stop": lambda: operator.stop_worker(target, who=who),
        "event-replay": lambda: operator.replay_event(target, who=who),
    }
    return await calls[name]()


def safe_back(target: str) -> str:
    """A dashboard path to return to (never another site); the events page otherwise."""
    path = urllib.parse.urlsplit(target)
    if path.scheme or path.netloc or not path.path.startswith("/ui/") or "\\" in target:
        return "/ui/events"
    query = urllib.parse.urlencode(
        [(k, v) for k, v in urllib.parse.parse_qsl(path.query) if k not in ("done", "on")]
    )
    return path.path + (f"?{query}" if query else "")
