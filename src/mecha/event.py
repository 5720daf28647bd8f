"""Events: what happened at a forge, verified and normalised, and the states an event moves through.

A webhook route turns a request into a ``Delivery`` (sans-I/O, in ``mecha.forges``); the store
gives it an id and keeps it as an ``Event``. Attribute values are plain JSON values: text,
integers, booleans (and, after hydration, text only). ``render_value`` shows one the way
upstream's Go code did (``fmt.Sprint``), which is what filters compare and templates print.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NotRequired

from typing_extensions import TypedDict  # pydantic reads it (to make the API's schema) on 3.11

from mecha.errors import WebhookError

#: attribute value types a forge parser may produce
AttrValue = str | int | bool | None

#: request headers never stored with an event: they carry secrets, not facts
SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "x-api-key", "x-gitlab-token", "proxy-authorization"}
)
#: request headers every source keeps with its events (besides its own, see ``stored_headers``)
COMMON_HEADERS = ("content-type", "user-agent")
#: the longest header value stored with an event (characters); a longer one is cut
MAX_STORED_HEADER = 1024
#: the longest delivery id accepted (characters)
MAX_DELIVERY_ID = 128
#: what a delivery id may be made of
_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]+")


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
    #: the request headers the source keeps (``stored_headers``): lowercase names, values cut
    #: at MAX_STORED_HEADER, never one of SECRET_HEADERS
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


def received(delivery: Delivery, *, now: float) -> Event:
    """A delivery as a new event: a fresh id, state ``received``, arrived ``now``."""
    return Event(
        id=uuid.uuid4().hex, source=delivery.source, type=delivery.type,
        delivery_id=delivery.delivery_id, actor=delivery.actor, subject=delivery.subject,
        attrs=dict(delivery.attrs), state=EventState.RECEIVED, raw=delivery.raw,
        headers=dict(delivery.headers), created_at=now, updated_at=now,
    )  # fmt: skip


def stored_headers(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The headers of ``names`` (and COMMON_HEADERS) that ``headers`` has, lowercase, each cut
    at MAX_STORED_HEADER characters; SECRET_HEADERS are never kept, whatever ``names`` says.

    An allowlist: a header a source does not use (a proxy's, a sender's own) is not stored."""
    kept = {}
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in (*COMMON_HEADERS, *names):
        low = name.lower()
        if low in SECRET_HEADERS or low not in lowered or low in kept:
            continue
        kept[low] = lowered[low][:MAX_STORED_HEADER]
    return kept


def checked_delivery_id(value: str, header: str) -> str:
    """``value`` (a delivery id read from ``header``) if it is a sane dedupe key: at most
    MAX_DELIVERY_ID characters of ``A-Z a-z 0-9 . _ : -``; else ``WebhookError`` 400."""
    if len(value) > MAX_DELIVERY_ID:
        raise WebhookError(
            400,
            f"the {header} header is {len(value)} characters long; at most "
            f"{MAX_DELIVERY_ID} are accepted",
            hint=f"{header} is the delivery id Mecha deduplicates on; send a short id "
            "such as a UUID",
        )
    if not _DELIVERY_ID.fullmatch(value):
        raise WebhookError(
            400,
            f"the {header} header has a character other than letters, digits and . _ : -",
            hint=f"{header} is the delivery id Mecha deduplicates on; send a short id "
            "such as a UUID",
        )
    return value


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
    """What a prompt template sees: actor, subject, source, type, then every attribute, and
    ``repo`` (``owner/name``) where the event has ``repo_owner`` and ``repo_name``."""
    data: dict[str, Any] = {
        "actor": event.actor,
        "subject": event.subject,
        "source": event.source,
        "type": event.type,
    }
    owner, name = event.attrs.get("repo_owner"), event.attrs.get("repo_name")
    if owner and name:
        data["repo"] = f"{owner}/{name}"
    data.update(event.attrs)
    return data


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. 2026-11-21T10:00:00.123Z."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class EventJson(TypedDict):
    """An event as the API shows it (times are RFC 3339 in UTC); with its headers and its
    raw body (``raw``, or ``raw_base64`` when the body is not UTF-8) on its own page."""

    id: str
    delivery_id: str
    source: str
    type: str
    actor: str
    subject: str
    state: EventState
    error: str
    attrs: dict[str, Any]
    created_at: str
    updated_at: str
    headers: NotRequired[dict[str, str]]
    raw: NotRequired[str]
    raw_base64: NotRequired[str]


def event_json(event: Event, *, full: bool = False) -> EventJson:
    """The event as the API shows it; ``full`` adds the headers and the raw body."""
    shown: EventJson = {
        "id": event.id,
        "delivery_id": event.delivery_id,
        "source": event.source,
        "type": event.type,
        "actor": event.actor,
        "subject": event.subject,
        "state": event.state,
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
