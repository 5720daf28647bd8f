"""The stored result's size cap: ``cap_result`` cuts a worker's answer to ``max_result`` (pure).

A worker may answer up to 10 MB (the endpoint's limit), and one stored row per task kept
that whole: one 9 MB answer left a 23.6 MB database. What is stored is now at most
``max_result`` bytes (config.yml, default 1 MB) of JSON as the store writes it. Over the
cap the long texts (``output``, ``comment.body``, ``commit.diff``, ``commit.message``,
``error``, ``status.description``) are cut, the shorter ones first kept whole, each cut
text ending in a note that says so; a ``truncated`` entry records the answer's full size
and each cut field's::

    "truncated": {"bytes": 9437184, "max_bytes": 1000000,
                  "fields": {"output": 6400000, "comment.body": 2700000}, "note": "..."}

**The policy sees the whole answer, the store the capped one.** Write-back runs on the
result in memory, before it is stored, because what the policy decides must not depend on
how much of the answer is kept: a cut diff is a broken diff (a suggestion made from it
would be wrong), a comment the policy cuts at ``comment.max_length`` is cut at a word it
chooses, and the forge clients' own limits (GitHub takes 65,536 characters) are far below
the cap, so a 65,536-character comment is written as it would have been. The write record
keeps exactly what is written (``engine.writeback.as_written``), so nothing written is
lost when the stored result is cut.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

#: the default cap on a stored result, in bytes of its JSON (config.yml ``max_result``)
DEFAULT_MAX_RESULT = 1_000_000
#: the smallest cap config.yml accepts: room for the notes and a readable start of each text
MIN_MAX_RESULT = 10_000
#: the texts that are cut, longest first to go: (section, key); section "" = top level
TEXT_FIELDS = (
    ("", "output"), ("comment", "body"), ("commit", "diff"), ("commit", "message"),
    ("", "error"), ("status", "description"),
)  # fmt: skip
#: bytes kept free for the ``truncated`` entry and each cut text's note
_RESERVE = 600
_NOTE_ROOM = 160
#: a kept metadata value longer than this (as JSON) is left out when the rest is too large
_SMALL = 200


def stored_size(data: Mapping[str, Any]) -> int:
    """Bytes of ``data`` as the store writes it (compact JSON, UTF-8)."""
    return len(_dump(data))


def cap_result(data: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    """``data`` (a result as ``result_json`` gives it) cut to at most ``max_bytes`` stored.

    A result within the cap comes back unchanged. Over it, long texts are cut (each
    with a note), and a ``truncated`` entry gives the full sizes; labels and metadata
    are kept unless they alone are too large, when only their short values stay.
    """
    size = stored_size(data)
    if size <= max_bytes:
        return dict(data)
    out = _copy(data)
    texts = {path: _text_of(out, path) for path in TEXT_FIELDS}
    texts = {path: text for path, text in texts.items() if text}
    sizes = {path: _size(text) for path, text in texts.items()}
    shrunk = False
    rest = size - sum(sizes.values())
    if rest > max_bytes // 4:
        out, shrunk = _shrink_rest(out), True
        rest = stored_size(out) - sum(sizes.values())
    budget = max_bytes - rest - _RESERVE - _NOTE_ROOM * len(texts)
    for _ in range(4):  # the estimate is exact but for a few bytes; tighten if it is not
        allotted = _share(sizes, max(budget, 0))
        cut = {path: allotted[path] for path in sizes if allotted[path] < sizes[path]}
        capped = _copy(out)
        for path, room in cut.items():
            _set(capped, path, _cut(texts[path], room, sizes[path]))
        capped["truncated"] = _entry(size, max_bytes, {p: sizes[p] for p in cut}, shrunk)
        over = stored_size(capped) - max_bytes
        if over <= 0:
            return capped
        budget -= over + 64
    return {"truncated": _entry(size, max_bytes, {}, shrunk=False)}


def _dump(data: Any) -> bytes:
    """Compact JSON in UTF-8, escaped as ``json.dumps(ensure_ascii=False)`` escapes (the
    store's form); orjson for speed (a 1 MB text: 0.3 ms, not 4), json where it refuses."""
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:  # a lone surrogate, an integer past 64 bits, ...
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


def _size(text: str) -> int:
    """Bytes of ``text`` inside the stored JSON (escapes counted, quotes not)."""
    return len(_dump(text)) - 2


def _copy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy deep enough to replace the texts in (sections are copied, values shared)."""
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _text_of(data: Mapping[str, Any], path: tuple[str, str]) -> str:
    section, key = path
    holder = data.get(section) if section else data
    value = holder.get(key) if isinstance(holder, Mapping) else None
    return value if isinstance(value, str) else ""


def _set(data: dict[str, Any], path: tuple[str, str], text: str) -> None:
    section, key = path
    (data[section] if section else data)[key] = text


def _name(path: tuple[str, str]) -> str:
    return f"{path[0]}.{path[1]}" if path[0] else path[1]


def _share(sizes: Mapping[tuple[str, str], int], budget: int) -> dict[tuple[str, str], int]:
    """``budget`` bytes over the texts: the short ones whole, the long ones equal shares."""
    allotted: dict[tuple[str, str], int] = {}
    left = budget
    ordered = sorted(sizes, key=lambda path: sizes[path])
    for index, path in enumerate(ordered):
        share = left // (len(ordered) - index)
        allotted[path] = min(sizes[path], share)
        left -= allotted[path]
    return allotted


def _cut(text: str, room: int, full: int) -> str:
    """The start of ``text`` in at most ``room`` stored bytes, and a note saying it was cut."""
    note = f"\n\n… (cut by Mecha: {full:,} bytes in all; max_result in config.yml caps it)"
    room -= _size(note)
    kept = text[: max(room, 0)]
    size = _size(kept)
    while kept and size > room:
        kept = kept[: max(0, min(len(kept) - 1, len(kept) * room // size))]
        size = _size(kept)
    return kept + note


def _entry(
    size: int, max_bytes: int, fields: Mapping[tuple[str, str], int], shrunk: bool
) -> dict[str, Any]:
    names = {_name(path): full for path, full in fields.items()}
    parts = [f"{', '.join(names)} cut"] if names else []
    if shrunk:
        parts.append("labels and metadata keep only short values")
    return {
        "bytes": size, "max_bytes": max_bytes, "fields": names,
        "note": f"the worker's answer was {size:,} bytes, more than max_result "
        f"({max_bytes:,}) in config.yml: {'; '.join(parts) or 'nothing of it is kept'}",
    }  # fmt: skip


def _shrink_rest(data: dict[str, Any]) -> dict[str, Any]:
    """Labels and metadata reduced to what is short: they alone were too large to keep."""
    out = dict(data)
    metadata = out.get("metadata")
    if isinstance(metadata, Mapping):
        small = {k: v for k, v in list(metadata.items())[:50] if len(_dump([k, v])) <= _SMALL}
        out["metadata"] = small
    labels = out.get("labels")
    if isinstance(labels, Mapping):
        out["labels"] = {
            verb: [name for name in names[:100] if isinstance(name, str) and len(name) <= _SMALL]
            for verb, names in labels.items()
            if isinstance(names, list)
        }
    for section in ("comment", "status", "commit"):
        value = out.get(section)
        if isinstance(value, Mapping):  # e.g. a long comment target or status context
            out[section] = {
                k: v for k, v in value.items()
                if (section, k) in TEXT_FIELDS or len(_dump(v)) <= _SMALL
            }  # fmt: skip
    return out
