"""Generic webhook sources, sans-I/O: check a delivery, then turn it into a ``Delivery``.

A generic source (``sources:`` in ``config.yml``, see ``mecha.sources``) proves a delivery
either with an HMAC-SHA256 of the raw body in a header (``auth: hmac``, GitHub's format by
default: ``X-Hub-Signature-256: sha256=<hex>``) or with the server's API key
(``auth: api_key``: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``).

The event type comes from a header (``type_header``); the body must be a JSON object whose
top-level text, integer, boolean and number fields become attributes (numbers that are not
integers are kept as text, e.g. ``"1.5"``). ``actor`` and ``subject`` come from top-level
``actor`` / ``subject`` text fields when present. The delivery id is the
``delivery_header`` when one is configured, else a hash of type and body, so an identical
re-send is recognised as a duplicate.

The helpers below the generic functions (``load_json_object``, ``check_hmac_signature``,
``text_at`` ...) are shared with the GitHub and GitLab parsers. Everything here is pure:
bytes and headers (lowercase names) in, a ``Delivery`` or a ``WebhookError`` out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from mecha.errors import WebhookError
from mecha.event import AttrValue, Delivery, public_headers
from mecha.sources import GenericSource, SourceAuth

#: how many hex digits the content-hash delivery id keeps (16 bytes, as upstream did)
HASH_ID_LENGTH = 32


def verify_generic(
    source: GenericSource,
    body: bytes,
    headers: Mapping[str, str],
    *,
    secrets: Sequence[str],
    api_key: str,
) -> None:
    """Refuse (``WebhookError`` 401) a delivery to ``source`` that does not prove it is genuine.

    ``secrets`` are the source's HMAC secrets (any one may match: rotation); ``api_key`` is the
    server's API key, ``""`` when the server has none (then ``auth: api_key`` accepts anything,
    as upstream did — the server decides whether that is allowed).
    """
    if source.auth is SourceAuth.API_KEY:
        _check_api_key(headers, api_key)
        return
    configured = [secret for secret in secrets if secret]
    setting = f"sources.{source.name}.secret"
    if not configured:
        raise WebhookError(
            401,
            f"no secret is configured for source {source.name!r}, so its deliveries cannot be "
            "verified",
            hint=f"set {setting} in secrets.yml (every key starting with 'secret' is accepted, "
            "for rotation), or use auth: api_key for this source in config.yml",
        )
    value = headers.get(source.signature_header.lower())
    if value is None:
        raise WebhookError(
            401,
            f"missing {source.signature_header} header",
            hint=f"source {source.name!r} uses auth: hmac; the sender must put "
            f"{source.signature_prefix}<hex HMAC-SHA256 of the body> in {source.signature_header}",
        )
    check_hmac_signature(
        body,
        value,
        header=source.signature_header,
        prefix=source.signature_prefix,
        secrets=configured,
        setting=setting,
    )


def _check_api_key(headers: Mapping[str, str], api_key: str) -> None:
    if not api_key:
        return
    presented: list[str] = []
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        presented.append(credentials.strip())
    if headers.get("x-api-key", "").strip():
        presented.append(headers["x-api-key"].strip())
    if not presented:
        raise WebhookError(
            401,
            "missing API key: the delivery has neither Authorization: Bearer <key> nor X-API-Key",
            hint="this source uses auth: api_key; send the server's API key in one of them",
        )
    expected = api_key.encode()
    if not any(hmac.compare_digest(key.encode(), expected) for key in presented):
        raise WebhookError(
            401,
            "the API key in the delivery does not match the server's API key",
            hint="send the key `mecha serve` was started with (api_key in secrets.yml)",
        )


def parse_generic(source: GenericSource, body: bytes, headers: Mapping[str, str]) -> Delivery:
    """Turn a verified delivery to ``source`` into a ``Delivery`` (``WebhookError`` 400 if it
    cannot be read)."""
    kind = required_header(
        headers,
        source.type_header,
        hint=f"source {source.name!r} takes the event type from {source.type_header} "
        "(type_header in config.yml)",
    )
    payload = load_json_object(body, what=f"delivery to source {source.name!r}")
    attrs: dict[str, AttrValue] = {}
    for key, value in payload.items():
        if isinstance(value, str | int):  # bool is an int, and stays a bool
            attrs[key] = value
        elif isinstance(value, float):
            attrs[key] = repr(value)
    return Delivery(
        source=source.name,
        type=kind,
        delivery_id=_generic_delivery_id(source, kind, body, headers),
        actor=text_at(payload, "actor"),
        subject=text_at(payload, "subject"),
        attrs=attrs,
        raw=body,
        headers=public_headers(headers),
    )


def _generic_delivery_id(
    source: GenericSource, kind: str, body: bytes, headers: Mapping[str, str]
) -> str:
    if source.delivery_header:
        return required_header(
            headers,
            source.delivery_header,
            hint=f"source {source.name!r} deduplicates on {source.delivery_header} "
            "(delivery_header in config.yml); send it, or remove delivery_header to "
            "deduplicate on a hash of type and body",
        )
    digest = hashlib.sha256(kind.encode() + b":" + body).hexdigest()
    return digest[:HASH_ID_LENGTH]


# ---------------------------------------------------------------- shared by the forge parsers

_HEX_DIGITS = frozenset("0123456789abcdef")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def load_json_object(body: bytes, *, what: str) -> dict[str, Any]:
    """``body`` parsed as a JSON object, or ``WebhookError`` 400 saying why and where not.

    orjson parses (about 4x faster than the stdlib on webhook payloads, which matters on
    the ingest path); it refuses NaN and Infinity as JSON does.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _json_error(body, error, what) from None
    if not isinstance(value, dict):
        got = "null" if value is None else _JSON_TYPES.get(type(value), "a number")
        raise WebhookError(
            400,
            f"the {what} must be a JSON object ({{...}}), not {got}",
            hint="send the event as one JSON object",
        )
    return value


def _json_error(body: bytes, error: json.JSONDecodeError, what: str) -> WebhookError:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return WebhookError(
            400,
            f"the {what} is not UTF-8 text: {bad.reason} at byte {bad.start}",
            hint="send the body as UTF-8 encoded JSON",
        )
    return WebhookError(
        400,
        f"the {what} is not valid JSON: {error.msg} at line {error.lineno} column "
        f"{error.colno} (char {error.pos})",
        hint="send the body as JSON (Content-Type: application/json)",
    )


def required_header(headers: Mapping[str, str], name: str, *, hint: str) -> str:
    """The stripped value of header ``name``; ``WebhookError`` 400 if it is missing or empty."""
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise WebhookError(400, f"missing {name} header", hint=hint)
    return value


def check_hmac_signature(
    body: bytes,
    value: str,
    *,
    header: str,
    prefix: str,
    secrets: Sequence[str],
    setting: str,
) -> None:
    """Refuse (401) unless ``value`` is ``prefix`` + the hex HMAC-SHA256 of ``body`` under one
    of ``secrets``. Compared in constant time; messages never show a secret."""
    text = value.strip()
    if not text.startswith(prefix):
        raise WebhookError(
            401,
            f"{header} does not start with {prefix!r}",
            hint=f"expected {header}: {prefix}<hex HMAC-SHA256 of the body>",
        )
    digest = text[len(prefix) :].lower()
    if not digest or not set(digest) <= _HEX_DIGITS:
        raise WebhookError(
            401,
            f"{header} is not a hex digest after {prefix!r}",
            hint=f"expected {header}: {prefix}<hex HMAC-SHA256 of the body>",
        )
    if len(digest) != 2 * hashlib.sha256().digest_size:
        raise WebhookError(
            401,
            f"{header} has {len(digest)} hex digits; an HMAC-SHA256 digest has 64 "
            "(was it cut short?)",
            hint="check that nothing between the sender and Mecha shortens the header",
        )
    matched = False
    for secret in secrets:
        expected = hmac.digest(secret.encode(), body, "sha256").hex()  # one C call
        matched |= hmac.compare_digest(expected, digest)
    if not matched:
        raise WebhookError(
            401,
            f"{header} does not match any configured webhook secret",
            hint=f"the sender's secret must equal {setting} in secrets.yml, and the body must "
            "arrive unchanged (no proxy re-encoding it)",
        )


def value_at(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...``, or None where a step is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def text_at(data: Any, *path: str) -> str:
    """The text at ``path``; numbers as text; "" for null, missing, objects and lists."""
    value = value_at(data, *path)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def int_at(data: Any, *path: str) -> int:
    """The integer at ``path``, or 0."""
    value = value_at(data, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def bool_at(data: Any, *path: str) -> bool:
    """The boolean at ``path``; False for anything else."""
    return value_at(data, *path) is True


def object_at(data: Any, *path: str) -> dict[str, Any]:
    """The object at ``path``, or an empty one."""
    value = value_at(data, *path)
    return value if isinstance(value, dict) else {}


def joined_names(items: Any, key: str) -> str:
    """``items[*][key]`` joined with ", " (label names: GitHub ``name``, GitLab ``title``)."""
    if not isinstance(items, list):
        return ""
    return ", ".join(name for item in items if (name := text_at(item, key)))


def first_line(text: str) -> str:
    """The first line of ``text`` ("" for none)."""
    lines = text.splitlines()
    return lines[0] if lines else ""
