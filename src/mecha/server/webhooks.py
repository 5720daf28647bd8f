"""``POST /webhook/{source}``: verify, parse, store (synced), answer; matching runs afterwards.

Order matters and is the point of this module: the body is read with a size cap, the
source's signature is checked on the raw bytes **before** any JSON is parsed or anything is
written, and ``202`` is sent only after the event's row is committed to disk (in a group
commit shared with concurrent requests). Refusals write nothing and answer JSON
``{"error": ..., "hint": ...}``: 431 headers over 64 KB, 404 unknown source, 413 too large,
401 bad signature, 400 malformed (not JSON, a key named twice in one object, a GitHub or
GitLab event whose fields have the wrong shape: ``mecha.forges.payload_shape``, a delivery
id too long or of unsafe characters). A request uvicorn cannot parse (a malformed
``Content-Length``) is answered 400 JSON before it reaches here
(``mecha.server.header_limit``). A repeated delivery answers ``200 {"status": "duplicate"}``.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mecha.errors import StoreError, WebhookError
from mecha.event import Delivery
from mecha.server.header_limit import TOO_LARGE_HINT, TOO_LARGE_MESSAGE, too_large
from mecha.server.models import WebhookReceivedJson, WebhookSeenJson
from mecha.server.state import AppState, error_response, read_body

#: the largest body accepted (GitHub caps payloads at 25 MB)
MAX_BODY = 25 * 1024 * 1024

log = logging.getLogger(__name__)


async def receive_webhook(request: Request) -> Response:
    """The webhook route."""
    if too_large(request.scope["headers"]):
        return error_response(431, TOO_LARGE_MESSAGE, TOO_LARGE_HINT)
    state: AppState = request.app.state.mecha
    source = request.path_params["source"]
    handler = state.sources.get(source)
    if handler is None:
        known = ", ".join(sorted(state.sources)) or "none"
        return error_response(
            404,
            f"unknown source: {source}",
            f"sources this server takes: {known}; generic sources are set in config.yml",
        )
    body = await read_body(request, limit=MAX_BODY)
    if isinstance(body, Response):
        return body
    try:
        delivery = handler(body, request.headers)
    except WebhookError as exc:
        log.warning("webhook %s refused (%d): %s", source, exc.status, exc.message)
        return error_response(exc.status, exc.message, exc.hint)
    if delivery.type == "ping":
        pong: WebhookSeenJson = {"status": "pong", "delivery_id": delivery.delivery_id}
        return JSONResponse(pong)
    return await _store(state, delivery)


async def _store(state: AppState, delivery: Delivery) -> Response:
    try:
        event = await state.pipeline.receive(delivery)
    except (StoreError, RuntimeError) as exc:
        log.error("event %s from %s not stored: %s", delivery.delivery_id, delivery.source, exc)
        return error_response(
            503, "the event could not be stored", "retry the delivery later; see the server log"
        )
    if event is None:
        log.info("delivery %s from %s is a duplicate", delivery.delivery_id, delivery.source)
        seen: WebhookSeenJson = {"status": "duplicate", "delivery_id": delivery.delivery_id}
        return JSONResponse(seen)
    stored: WebhookReceivedJson = {
        "status": "received",
        "id": event.id,
        "type": event.type,
        "source": event.source,
    }
    return JSONResponse(stored, status_code=202)
