"""Who may see and act on the dashboard.

- While the API is closed (beyond loopback without a key), every page is 403, as the API is.
- Without an API key (an open loopback server) pages are open; a session cookie is still
  set on the first visit, because actions need a CSRF token bound to a session.
- With an API key, pages need a session: ``/ui/login`` takes the key (compared in constant
  time) and sets the cookie (HttpOnly, SameSite=Strict, Secure when the request came over
  TLS, e.g. through a proxy that says so in X-Forwarded-Proto from loopback).
- Every POST needs the session's CSRF token in its form, and, when the browser sends an
  Origin header, an Origin of this server.
"""

from __future__ import annotations

import functools
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mecha.server.state import AppState, key_matches
from mecha.server.ui.action_words import done_notice
from mecha.server.ui.render import SECURITY_HEADERS, render
from mecha.server.ui.session import COOKIE, LIFETIME, LOGIN_COOKIE, Session, Sessions

#: the largest form body an action or the login takes
MAX_FORM = 16 * 1024


@dataclass(frozen=True, slots=True)
class UiState:
    """What the dashboard keeps besides AppState: its sessions."""

    sessions: Sessions


@dataclass(frozen=True, slots=True)
class Page:
    """One request's view of the dashboard: the server's collaborators, the session, its
    CSRF token, and who acts (the session's name and the client's address)."""

    state: AppState
    ui: UiState
    session: Session
    csrf: str
    who: str
    keyed: bool
    #: what the last action did (``?done=&on=``: ``action_pages.done_notice``)
    notice: str = ""

    def context(self, **values: Any) -> dict[str, Any]:
        """A template context with what every page shows (the CSRF token, who, the time)."""
        return {"csrf": self.csrf, "who": self.session.who, "keyed": self.keyed,
                "now": time.time(), "notice": self.notice, **values}  # fmt: skip


PageEndpoint = Callable[[Request, Page], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def page(endpoint: PageEndpoint) -> Endpoint:
    """A page (GET): 403 while the API is closed, the login first when a key is set."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        found = _session(request)
        if isinstance(found, Response):
            return found
        current, fresh_cookie = found
        began = time.perf_counter()
        response = await endpoint(request, current)
        spent = (time.perf_counter() - began) * 1000
        response.headers["server-timing"] = f"app;dur={spent:.1f}"  # store reads + render
        if fresh_cookie:
            _set_session_cookie(request, response, fresh_cookie)
        return response

    return guarded


def action(endpoint: Callable[[Request, Page, Mapping[str, str]], Awaitable[Response]]) -> Endpoint:
    """An action (POST): a session, its CSRF token in the form, a same-origin request."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        found = _session(request, create=False)
        if isinstance(found, Response):
            return found
        current, _ = found
        form = await read_form(request)
        if (
            form is None
            or not current.ui.sessions.csrf_matches(current.session, form.get("csrf", ""))
            or not _same_origin(request)
        ):
            return refused_page(
                current.state, 403,
                "This action was refused: its form has no valid CSRF token, or came from "
                "another site.",
                "Go back, reload the page and try again.",
            )  # fmt: skip
        return await endpoint(request, current, form)

    return guarded


async def read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body (the first value of each field), None if too large or not one."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    try:
        pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def refused_page(state: AppState, status: int, message: str, hint: str) -> Response:
    """An HTML error page (never a traceback)."""
    return render(state.redactor, "error.html", {"message": message, "hint": hint,
                  "status": status, "csrf": "", "who": "", "keyed": False,
                  "title": f"{status}", "live": "", "notice": "",
                  "now": time.time()}, status=status)  # fmt: skip


def login_redirect(request: Request) -> Response:
    """To the login form, coming back here after."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/ui/login?" + urllib.parse.urlencode({"next": back})
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def _session(request: Request, *, create: bool = True) -> tuple[Page, str] | Response:
    state: AppState = request.app.state.mecha
    ui: UiState = request.app.state.ui
    if state.api_closed:
        return refused_page(
            state, 403,
            "The dashboard is closed: this server listens beyond loopback without an API key.",
            "Start mecha serve with --api-key KEY (or MECHA_API_KEY, or api_key: in "
            "config.yml), then sign in with that key.",
        )  # fmt: skip
    now = time.time()
    session = ui.sessions.read(request.cookies.get(COOKIE, ""), now=now)
    cookie = ""
    if session is None:
        if state.api_key or not create:
            return login_redirect(request) if request.method == "GET" else refused_page(
                state, 403, "You are not signed in.", "Sign in at /ui/login, then try again."
            )  # fmt: skip
        session, cookie = ui.sessions.issue("", now=now)
    return _page(request, state, ui, session), cookie


def _page(request: Request, state: AppState, ui: UiState, session: Session) -> Page:
    client = request.client.host if request.client else "unknown"
    who = f"{session.who or 'dashboard user'} (dashboard, {client})"
    return Page(state=state, ui=ui, session=session, csrf=ui.sessions.csrf(session), who=who,
                keyed=bool(state.api_key),
                notice=done_notice(request.query_params))  # fmt: skip


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not every browser sends it on a same-origin POST
        return True
    host = request.headers.get("host", "")
    return urllib.parse.urlsplit(origin).netloc == host


def _set_session_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        COOKIE, value, max_age=LIFETIME, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


# ---------------------------------------------------------------- the login form


async def login_form(request: Request) -> Response:
    """``GET /ui/login``: the form (its own CSRF cookie, since there is no session yet)."""
    state: AppState = request.app.state.mecha
    if not state.api_key:
        return RedirectResponse("/ui/events", status_code=303)
    return _login_page(request, error="")


async def login(request: Request) -> Response:
    """``POST /ui/login``: the key (constant time) → a session cookie, then back."""
    state: AppState = request.app.state.mecha
    ui: UiState = request.app.state.ui
    form = await read_form(request) or {}
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not token or not secrets.compare_digest(token.encode(), form.get("csrf", "").encode()):
        return _login_page(request, error="The form was out of date; try again.", status=403,
                           nxt=form.get("next", ""))  # fmt: skip
    if not state.api_key or not key_matches(state.api_key, form.get("key", "")):
        return _login_page(request, error="That is not this server's API key.", status=401,
                           nxt=form.get("next", ""))  # fmt: skip
    _, cookie = ui.sessions.issue(form.get("name", ""), now=time.time())
    response = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
    _set_session_cookie(request, response, cookie)
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


async def logout(request: Request) -> Response:
    """``POST /ui/logout``: the session cookie removed (needs the CSRF token too)."""
    found = _session(request, create=False)
    if isinstance(found, Response):
        return found
    current, _ = found
    form = await read_form(request) or {}
    if not current.ui.sessions.csrf_matches(current.session, form.get("csrf", "")):
        return refused_page(current.state, 403, "Sign-out refused: no valid CSRF token.",
                            "Reload the page and try again.")  # fmt: skip
    response = RedirectResponse("/ui/login" if current.keyed else "/ui/events", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _login_page(
    request: Request, *, error: str, status: int = 200, nxt: str | None = None
) -> Response:
    state: AppState = request.app.state.mecha
    token = secrets.token_hex(16)
    nxt = _safe_next(request.query_params.get("next", "") if nxt is None else nxt)
    response = render(state.redactor, "login.html", {"error": error, "login_csrf": token,
                      "next": nxt, "csrf": "", "who": "", "keyed": True,
                      "title": "Sign in", "live": "", "notice": "",
                      "now": time.time()}, status=status)  # fmt: skip
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path="/ui/login", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
    return response


def _safe_next(target: str) -> str:
    """Only a path of this dashboard (never another site, never ``//host``)."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/events"
