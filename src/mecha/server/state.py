"""What the routes share (built once by the composition root), and the JSON error shape."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from mecha.engine.batcher import Batcher
    from mecha.engine.matcher import EventMatcher
    from mecha.event import Delivery, Event
    from mecha.server.webhooks import SourceHandler
    from mecha.store import Store


@dataclass(kw_only=True)
class AppState:
    """The server's collaborators."""

    store: Store
    events: Batcher[Delivery, Event | None]
    matcher: EventMatcher
    sources: Mapping[str, SourceHandler]
    #: runs blocking store reads off the event loop
    reads: Executor
    api_key: str = ""


def error_response(status: int, message: str, hint: str = "") -> JSONResponse:
    """``{"error": message, "hint": hint}`` with ``status``."""
    body = {"error": message, "hint": hint} if hint else {"error": message}
    return JSONResponse(body, status_code=status)


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
