"""Rendering a dashboard page: the Jinja2 environment (autoescaped; every value through the
redactor on its way out), the filters the templates use, and the security headers every
page carries (a strict Content-Security-Policy: no inline script, nothing from elsewhere)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from typing import Any

import jinja2
import markupsafe
from starlette.responses import HTMLResponse

from mecha.event import timestamp
from mecha.redaction import Redacts
from mecha.server.ui.views import tone

#: every page's headers: scripts, styles and connections only from this server, no
#: framing, no referrer leaving it
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # no-referrer would make a form post's Origin "null"
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


@jinja2.pass_context
def _redacted(context: jinja2.runtime.Context, value: Any) -> Any:
    """Every text a template prints, through the page's redactor (``_redactor``); markup a
    macro made stays markup (its values went through here already)."""
    if isinstance(value, markupsafe.Markup):
        return value
    return context["_redactor"].redact(value) if isinstance(value, str) else value


@functools.cache
def environment() -> jinja2.Environment:
    """The templates' environment (one per process)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mecha.server.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_redacted,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ts=ts_text, age=age_text, short=short_id, pretty=pretty_json, tone=tone)
    return env


def render(
    redactor: Redacts, name: str, context: Mapping[str, Any], *, status: int = 200
) -> HTMLResponse:
    """Template ``name`` over ``context`` as an HTML response with SECURITY_HEADERS."""
    html = environment().get_template(name).render({**context, "_redactor": redactor})
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def ts_text(at: float) -> str:
    """A unix time as RFC 3339 UTC ("" for 0)."""
    return timestamp(at) if at else ""


def age_text(at: float, now: float | None = None) -> str:
    """How long ago ``at`` was, shortly: 5s, 3m, 2h, 4d."""
    if not at:
        return ""
    seconds = max(0, int((time.time() if now is None else now) - at))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short_id(value: str) -> str:
    """An id's first 8 characters (what the CLI shows)."""
    return value[:8]


def pretty_json(value: Any) -> str:
    """A JSON value indented for a <pre> block."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
