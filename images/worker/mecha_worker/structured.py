"""Structured answers: a JSON object in the model's text becomes comment/labels/status/commit.

A prompt can ask the model to answer with JSON such as::

    {"comment": {"body": "Looks good"}, "labels": {"add": ["reviewed"]},
     "status": {"state": "success", "description": "no findings"}}

The object is found when it is the whole text, the last fenced block that holds one
(```json ... ```), or the span from the first ``{`` to the last ``}``; it counts only
when it has at least one of the four fields. Each field is checked against the result
contract; a field of the wrong shape is left out and a note says why, so one bad field
never spoils the answer. Shorthands accepted: a string comment (the body), a list of
labels (labels to add), a string status (the state).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("comment", "labels", "status", "commit")
_FENCE = re.compile(r"```[\w+-]*[ \t]*\r?\n(.*?)\r?\n[ \t]*```", re.DOTALL)


@dataclass
class Structured:
    """The fields taken from the model's JSON, and notes on the ones left out."""

    fields: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def find(text: str) -> Structured | None:
    """The structured answer in ``text``, or None when the text holds none."""
    data = _first_object(text)
    if data is None:
        return None
    found = Structured()
    for name in FIELDS:
        if name not in data or data[name] is None:
            continue
        value, problem = _CHECKS[name](data[name])
        if problem:
            found.notes.append(f"{name} ignored: {problem}")
        else:
            found.fields[name] = value
    return found


def _first_object(text: str) -> dict[str, Any] | None:
    for candidate in _candidates(text):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict) and any(name in value for name in FIELDS):
            return value
    return None


def _candidates(text: str) -> Iterator[str]:
    yield text.strip()
    for block in reversed(_FENCE.findall(text)):
        yield block.strip()
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        yield text[start : end + 1]


def _text(section: dict[str, Any], key: str) -> str | None:
    """The string at ``key`` ("" when absent), None when it is not a string."""
    value = section.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else None


def _comment(value: Any) -> tuple[Any, str]:
    if isinstance(value, str):
        value = {"body": value}
    if not isinstance(value, dict):
        return None, 'expected {"body": "text"}'
    body, target = _text(value, "body"), _text(value, "target")
    if not body or not body.strip() or target is None:
        return None, 'expected {"body": "text"} with a non-empty body'
    return ({"body": body, "target": target} if target else {"body": body}), ""


def _names(value: Any) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return None
    if not all(isinstance(name, str) and name.strip() for name in value):
        return None
    return [name.strip() for name in value]


def _labels(value: Any) -> tuple[Any, str]:
    if isinstance(value, list):
        value = {"add": value}
    problem = 'expected {"add": [names], "remove": [names]} or a list of names'
    if not isinstance(value, dict):
        return None, problem
    add, remove = _names(value.get("add")), _names(value.get("remove"))
    if add is None or remove is None:
        return None, problem
    if not add and not remove:
        return None, "no label to add or remove"
    return {"add": add, "remove": remove}, ""


def _status(value: Any) -> tuple[Any, str]:
    if isinstance(value, str):
        value = {"state": value}
    problem = 'expected {"state": "success|failure|pending|error", "description": "text"}'
    if not isinstance(value, dict):
        return None, problem
    state = _text(value, "state")
    description, context = _text(value, "description"), _text(value, "context")
    if not state or not state.strip() or description is None or context is None:
        return None, problem
    status = {"state": state.strip().lower(), "description": description}
    if context:
        status["context"] = context
    return status, ""


def _commit(value: Any) -> tuple[Any, str]:
    problem = 'expected {"message": "text", "diff": "unified diff"} with a non-empty diff'
    if not isinstance(value, dict):
        return None, problem
    diff, message = _text(value, "diff"), _text(value, "message")
    if not diff or not diff.strip() or message is None:
        return None, problem
    return {"message": message, "diff": diff}, ""


_CHECKS: dict[str, Callable[[Any], tuple[Any, str]]] = {
    "comment": _comment,
    "labels": _labels,
    "status": _status,
    "commit": _commit,
}
