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
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mecha.engine import log_context, tracing
from mecha.errors import StoreError, WebhookError
from mecha.event import AttrValue, Delivery
from mecha.server.header_limit import TOO_LARGE_HINT, TOO_LARGE_MESSAGE, too_large
from mecha.server.models import WebhookReceivedJson, WebhookSeenJson
from mecha.server.state import AppState, error_response, read_body

if TYPE_CHECKING:
    from mecha.forges.sources import SourceHandler

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
    with tracing.tracer.span("mecha.delivery") as span:  # verify + store
        span.set("mecha.source", source)
        answer = await _receive(request, source, state, handler, span)
        span.set("http.response.status_code", answer.status_code)
        return answer


async def _receive(
    request: Request, source: str, state: AppState, handler: SourceHandler, span: tracing.Span
) -> Response:
    body = await read_body(request, limit=MAX_BODY)
    if isinstance(body, Response):
        return body
    try:
        delivery = handler(body, request.headers)
    except WebhookError as exc:
        log.warning("webhook %s refused (%d): %s", source, exc.status, exc.message)
        span.fail(exc.message)
        return error_response(exc.status, exc.message, exc.hint)
    span.set("mecha.delivery_id", delivery.delivery_id)
    if delivery.type == "ping":
        pong: WebhookSeenJson = {"status": "pong", "delivery_id": delivery.delivery_id}
        return JSONResponse(pong)
    if span.traceparent or tracing.TRACEPARENT in delivery.attrs:
        delivery = replace(delivery, attrs=_traced(delivery.attrs, span.traceparent))
    return await _store(state, delivery, span)


async def _store(state: AppState, delivery: Delivery, span: tracing.Span) -> Response:
    try:
        event = await state.pipeline.receive(delivery)
    except (StoreError, RuntimeError) as exc:
        log.error("event %s from %s not stored: %s", delivery.delivery_id, delivery.source, exc)
        span.fail(f"not stored: {exc}")
        return error_response(
            503, "the event could not be stored", "retry the delivery later; see the server log"
        )
    if event is None:
        log.info("delivery %s from %s is a duplicate", delivery.delivery_id, delivery.source)
        span.set("mecha.duplicate", True)
        seen: WebhookSeenJson = {"status": "duplicate", "delivery_id": delivery.delivery_id}
        return JSONResponse(seen)
    log_context.for_event(event.id)  # this request's later lines (the access log) name it
    span.set("mecha.event.id", event.id)
    stored: WebhookReceivedJson = {
        "status": "received",
        "id": event.id,
        "type": event.type,
        "source": event.source,
    }
    return JSONResponse(stored, status_code=202)


def _traced(attrs: Mapping[str, AttrValue], traceparent: str) -> dict[str, AttrValue]:
    """The delivery's attributes with its span kept as ``traceparent`` (its match and task
    spans join this trace), or without one, a name no payload may set (a generic
    source's top-level field of that name is dropped)."""
    kept = {key: value for key, value in attrs.items() if key != tracing.TRACEPARENT}
    if traceparent:
        kept[tracing.TRACEPARENT] = traceparent
    return kept
