"""Generic webhook sources, sans-I/O: check a delivery, then turn it into a ``Delivery``.

A generic source (``sources:`` in ``config.yml``, see ``mecha.config.sources``) proves a delivery
either with an HMAC-SHA256 of the raw body in a header (``auth: hmac``, GitHub's format by
default: ``X-Hub-Signature-256: sha256=<hex>``) or with the server's API key
(``auth: api_key``: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``).

The event type comes from a header (``type_header``); the body must be a JSON object whose
top-level text, integer, boolean and number fields become attributes (numbers that are not
integers are kept as text, e.g. ``"1.5"``). ``actor`` and ``subject`` come from top-level
``actor`` / ``subject`` text fields when present. The delivery id is the
``delivery_header`` when one is configured, else a hash of type and body, so an identical
re-send is recognised as a duplicate.

Everything here is pure: bytes and headers (lowercase names) in, a ``Delivery`` or a
``WebhookError`` out; the payload helpers it shares with the forge parsers are in
``mecha.forges.payload``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from mecha.config.sources import GenericSource, SourceAuth
from mecha.errors import WebhookError
from mecha.event import AttrValue, Delivery, checked_delivery_id, stored_headers
from mecha.forges.payload import check_hmac_signature, load_json_object, required_header, text_at
from mecha.numbers import attribute_number

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
        elif isinstance(value, float):  # 5.0 is 5, as upstream printed it (docs/upstream.md)
            attrs[key] = attribute_number(value)
    return Delivery(
        source=source.name,
        type=kind,
        delivery_id=_generic_delivery_id(source, kind, body, headers),
        actor=text_at(payload, "actor"),
        subject=text_at(payload, "subject"),
        attrs=attrs,
        raw=body,
        headers=stored_headers(headers, _stored_names(source)),
    )


def _stored_names(source: GenericSource) -> tuple[str, ...]:
    """The headers a generic source keeps: its type, delivery id and signature headers."""
    names = [source.type_header]
    if source.delivery_header:
        names.append(source.delivery_header)
    if source.auth is SourceAuth.HMAC:
        names.append(source.signature_header)
    return tuple(names)


def _generic_delivery_id(
    source: GenericSource, kind: str, body: bytes, headers: Mapping[str, str]
) -> str:
    if source.delivery_header:
        value = required_header(
            headers,
            source.delivery_header,
            hint=f"source {source.name!r} deduplicates on {source.delivery_header} "
            "(delivery_header in config.yml); send it, or remove delivery_header to "
            "deduplicate on a hash of type and body",
        )
        return checked_delivery_id(value, source.delivery_header)
    digest = hashlib.sha256(kind.encode() + b":" + body).hexdigest()
    return digest[:HASH_ID_LENGTH]


# ---------------------------------------------------------------- shared by the forge parsers
