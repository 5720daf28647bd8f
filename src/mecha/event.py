"""Events: what happened at a forge, verified and normalised, and the states an event moves through.

A webhook route turns a request into a ``Delivery`` (sans-I/O, in ``mecha.forges``); the store
gives it an id and keeps it as an ``Event``. Attribute values are plain JSON values: text,
integers, booleans (and, after hydration, text only). ``render_value`` shows one the way
upstream's Go code did (``fmt.Sprint``), which is what filters compare and templates print.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

#: attribute value types a forge parser may produce
AttrValue = str | int | bool | None

#: request headers never stored with an event: they carry secrets, not facts
SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "x-api-key", "x-gitlab-token", "proxy-authorization"}
)


class EventState(StrEnum):
    """received → matched → dispatched → completed | failed | skipped."""

    RECEIVED = "received"
    MATCHED = "matched"
    DISPATCHED = "dispatched"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """A verified, normalised webhook delivery, not yet stored."""

    #: github, gitlab or a generic source's name
    source: str
    #: normalised type, e.g. pull_request.opened, merge_request.open, push
    type: str
    #: the forge's delivery id (deduplication key within the source)
    delivery_id: str
    #: who caused it (login / username); "" if unknown
    actor: str = ""
    #: what it is about (owner/repo, group/project); "" if unknown
    subject: str = ""
    attrs: Mapping[str, AttrValue] = field(default_factory=dict)
    #: the exact bytes received
    raw: bytes = b""
    #: request headers, lowercase names, with SECRET_HEADERS removed
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """A stored event."""

    id: str
    source: str
    type: str
    delivery_id: str
    actor: str
    subject: str
    attrs: Mapping[str, Any]
    state: EventState
    #: why the event failed, or what went wrong on the way (e.g. hydration), "" if nothing
    error: str = ""
    raw: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


def public_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with lowercase names and without the ones that carry secrets."""
    kept = {}
    for name, value in headers.items():
        low = name.lower()
        if low not in SECRET_HEADERS:
            kept[low] = value
    return kept


def render_value(value: Any) -> str:
    """A value as upstream printed it: ``true``/``false``, ``<nil>`` for nothing."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(render_value(item) for item in value)
    return str(value)


def template_data(event: Event | Delivery) -> dict[str, Any]:
    """What a prompt template sees: actor, subject, source, type, then every attribute."""
    data: dict[str, Any] = {
        "actor": event.actor,
        "subject": event.subject,
        "source": event.source,
        "type": event.type,
    }
    data.update(event.attrs)
    return data


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. 2026-11-21T10:00:00.123Z."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def event_json(event: Event, *, full: bool = False) -> dict[str, Any]:
    """The event as the API shows it; ``full`` adds the headers and the raw body."""
    shown: dict[str, Any] = {
        "id": event.id,
        "delivery_id": event.delivery_id,
        "source": event.source,
        "type": event.type,
        "actor": event.actor,
        "subject": event.subject,
        "state": event.state.value,
        "error": event.error,
        "attrs": dict(event.attrs),
        "created_at": timestamp(event.created_at),
        "updated_at": timestamp(event.updated_at),
    }
    if full:
        shown["headers"] = dict(event.headers)
        try:
            shown["raw"] = event.raw.decode("utf-8")
        except UnicodeDecodeError:
            shown["raw_base64"] = base64.b64encode(event.raw).decode("ascii")
    return shown
