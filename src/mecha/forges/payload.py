"""Reading webhook payloads, shared by every source's parser (pure).

JSON bodies (orjson: about 4x the stdlib's speed on a 22 KB payload), required headers,
HMAC signature headers, and tolerant lookups into nested JSON (``text_at`` and friends
turn a missing or null value into "" / 0 / False instead of failing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from mecha.errors import WebhookError
from mecha.forges.duplicate_keys import repeated_key
from mecha.numbers import attribute_number

#: hex digits of a commit id shown in a push's commit lines
SHORT_SHA = 8
_HEX_DIGITS = frozenset("0123456789abcdef")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def load_json_object(body: bytes, *, what: str) -> dict[str, Any]:
    """``body`` parsed as a JSON object, or ``WebhookError`` 400 saying why and where not.

    orjson parses (about 4x faster than the stdlib on webhook payloads, which matters on
    the ingest path); it refuses NaN and Infinity as JSON does. A key named twice in one
    object is refused too (``mecha.forges.duplicate_keys``), which orjson would take.
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
    repeated = repeated_key(body, value)
    if repeated is not None:
        where, key = repeated
        raise WebhookError(
            400,
            f"the {what} names the key {key} more than once in the object at {where}",
            hint="name each key once in a JSON object (readers disagree on which value "
            "counts); send the payload as the sender wrote it",
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
        return str(attribute_number(value))  # 5.0 as "5", as upstream printed it
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


def commit_lines(commits: Any) -> str:
    """A push's commits as lines of ``<8-char sha> <first line of the message>``."""
    return "\n".join(
        f"{text_at(commit, 'id')[:SHORT_SHA]} {first_line(text_at(commit, 'message'))}"
        for commit in (commits if isinstance(commits, list) else [])
        if isinstance(commit, dict)
    )
