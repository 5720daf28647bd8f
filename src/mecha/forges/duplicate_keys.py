"""A key named twice in one object of a JSON text: the check orjson does not make (pure).

orjson keeps the last of two equal keys; another reader of the same signed body (a worker, a
log pipeline, the forge's own tools) may keep the first. So a webhook body that repeats a key
is refused instead of being read one way here and another way elsewhere.

``repeated_key`` is on every webhook's path, so it first proves cheaply that nothing repeats:
outside strings a JSON text has exactly one ``:`` per key, and inside strings every ``:`` is
kept when orjson writes the parsed value back (compact: no other ``:``). So the body and its
re-serialisation hold the same number of ``:`` unless a key was dropped, or a string spelled
a colon ``\\u003a`` (then the exact scan runs). That costs a ``dumps``, two byte counts and,
if the body has a backslash at all, one search: about 20-27 µs on a 22 KB payload, against
about 24 µs for parsing it. Only a body that fails it is scanned token by token to find the
key and where it is.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: a colon written as an escape, which the count above cannot see
_COLON_ESCAPE = re.compile(rb"\\u003[aA]")
#: one token of a JSON text already known to be valid: a string, a punctuation mark, or a
#: number / true / false / null
_TOKEN = re.compile(
    rb'[ \t\r\n]*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([{}\[\],:])|[^ \t\r\n{}\[\],:"]+)', re.DOTALL
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
#: the longest key and path shown in a message (characters)
SHOWN = 120


def repeated_key(body: bytes, parsed: Any) -> tuple[str, str] | None:
    """(the JSON path of the object, the key) of the first key ``body`` names twice in one
    object, or None. ``parsed`` is what orjson made of ``body`` (which must be valid JSON)."""
    try:
        again = orjson.dumps(parsed)
    except orjson.JSONEncodeError:  # deeper than orjson writes: scan
        return _first_repeat(body)
    if body.count(b":") == again.count(b":") and (
        b"\\" not in body or _COLON_ESCAPE.search(body) is None  # no escape: no \u003a
    ):
        return None
    return _first_repeat(body)


class _Frame:
    """An object or array being read: its keys so far, or the index of its current item."""

    __slots__ = ("index", "key", "keys", "wants_key")

    def __init__(self, is_object: bool) -> None:
        self.keys: set[str] | None = set() if is_object else None
        self.key = ""
        self.index = 0
        self.wants_key = is_object


def _first_repeat(body: bytes) -> tuple[str, str] | None:
    frames: list[_Frame] = []
    pos = 0
    while (token := _TOKEN.match(body, pos)) is not None:
        pos = token.end()
        text, mark = token.group(1), token.group(2)
        top = frames[-1] if frames else None
        if mark in (b"{", b"["):
            frames.append(_Frame(mark == b"{"))
        elif mark in (b"}", b"]"):
            frames.pop()
        elif mark == b"," and top is not None:
            top.wants_key = top.keys is not None
            top.index += 1
        elif text is not None and top is not None and top.keys is not None and top.wants_key:
            key = str(orjson.loads(text))
            if key in top.keys:
                return _path(frames[:-1]), _shown(key)
            top.keys.add(key)
            top.key, top.wants_key = key, False
    return None


def _path(frames: list[_Frame]) -> str:
    path = "$" + "".join(
        (f".{frame.key}" if _NAME.match(frame.key) else f"[{json.dumps(frame.key)}]")
        if frame.keys is not None
        else f"[{frame.index}]"
        for frame in frames
    )
    return path if len(path) <= SHOWN else f"{path[: SHOWN // 2]}…{path[-SHOWN // 2 :]}"


def _shown(key: str) -> str:
    quoted = json.dumps(key)
    return quoted if len(quoted) <= SHOWN else f"{quoted[:SHOWN]}…"
