"""The result contract: what a worker answers to ``POST /task``, as typed values (pure).

Every field is optional (upstream §6.1)::

    {"output": "...", "comment": {"target": "pr:42", "body": "..."},
     "labels": {"add": ["bug"], "remove": ["needs-review"]},
     "status": {"state": "success", "description": "...", "context": "..."},
     "commit": {"message": "...", "diff": "..."},
     "metadata": {"model": "...", "input_tokens": 0, "output_tokens": 0,
                  "duration_ms": 0, "exit_code": 0},
     "error": "..."}

``parse_result`` refuses a malformed answer with a ``ResultError`` that quotes the part
that was wrong, and ``failure_of`` says whether a well-formed answer reports a failure
(``metadata.exit_code`` not 0, or an ``error`` field): upstream recorded both as completed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mecha.errors import MechaError

#: the commit status states a forge accepts; the parser keeps any other state and the
#: policy gate drops it (``status: invalid state "x"``), as upstream did
STATUS_STATES = ("success", "failure", "pending", "error")
#: how much of a bad value an error message quotes
QUOTE_LIMIT = 120


class ResultError(MechaError):
    """A worker's answer does not follow the result contract."""


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment to post; ``target`` is advisory (the event's own PR or issue is used)."""

    body: str
    target: str = ""


@dataclass(frozen=True, slots=True)
class Labels:
    """Labels to add and to remove."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Status:
    """A commit status."""

    state: str
    description: str = ""
    context: str = ""


@dataclass(frozen=True, slots=True)
class CommitSuggestion:
    """A change the worker suggests, as a unified diff."""

    diff: str
    message: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskResult:
    """A worker's answer, checked."""

    output: str = ""
    comment: Comment | None = None
    labels: Labels | None = None
    status: Status | None = None
    commit: CommitSuggestion | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: the worker's own failure report ("" if none)
    error: str = ""


def quote(value: Any) -> str:
    """A short printable rendering of ``value`` for an error message."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "…"


def parse_result(data: Any) -> TaskResult:
    """Check a decoded JSON answer against the result contract; ResultError quotes the fault."""
    if not isinstance(data, Mapping):
        raise ResultError(
            f"the worker's answer is {_shown(data)}, not a JSON object",
            hint='a worker answers {"output": "..."} and optionally comment, labels, status, '
            "commit, metadata",
        )
    return TaskResult(
        output=_text(data, "output"),
        comment=_comment(data.get("comment")),
        labels=_labels(data.get("labels")),
        status=_status(data.get("status")),
        commit=_commit(data.get("commit")),
        metadata=_metadata(data.get("metadata")),
        error=_error(data.get("error")),
    )


def failure_of(result: TaskResult) -> str:
    """Why a well-formed answer is a failure ("" if it is not): an error or exit code."""
    if result.error:
        return f"the worker reported an error: {result.error}"
    code = result.metadata.get("exit_code", 0)
    if code not in (0, None):
        detail = f": {result.output.strip()[:QUOTE_LIMIT]}" if result.output.strip() else ""
        return f"the worker reported exit code {code}{detail}"
    return ""


def result_json(result: TaskResult) -> dict[str, Any]:
    """The result as stored and shown: only the fields the worker gave."""
    out: dict[str, Any] = {}
    if result.output:
        out["output"] = result.output
    if result.comment is not None:
        out["comment"] = {"body": result.comment.body}
        if result.comment.target:
            out["comment"]["target"] = result.comment.target
    if result.labels is not None:
        out["labels"] = {"add": list(result.labels.add), "remove": list(result.labels.remove)}
    if result.status is not None:
        status = {"state": result.status.state, "description": result.status.description}
        if result.status.context:
            status["context"] = result.status.context
        out["status"] = status
    if result.commit is not None:
        out["commit"] = {"message": result.commit.message, "diff": result.commit.diff}
    if result.metadata:
        out["metadata"] = dict(result.metadata)
    if result.error:
        out["error"] = result.error
    return out


def kind_of(value: Any) -> str:
    """What sort of JSON value this is, for messages ("a string", "a list", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _shown(value: Any) -> str:
    """``a list [1, 2]``, ``a string 'x'``; plain ``null`` for null."""
    return "null" if value is None else f"{kind_of(value)} {quote(value)}"


def _wrong(where: str, value: Any, expected: str, hint: str = "") -> ResultError:
    return ResultError(
        f"{where} is {_shown(value)}; expected {expected}",
        hint=hint or "see the result contract in docs/workers.md",
    )


def _text(data: Mapping[str, Any], key: str, where: str = "") -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _wrong(f'"{where}{key}"', value, "a string")
    return value


def _section(value: Any, name: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _wrong(f'"{name}"', value, "an object")
    return value


def _comment(value: Any) -> Comment | None:
    section = _section(value, "comment")
    if section is None:
        return None
    body = _text(section, "body", "comment.")
    if not body.strip():
        raise ResultError(
            f'"comment" has no body: {quote(dict(section))}',
            hint='write {"comment": {"body": "the text"}} or leave comment out',
        )
    return Comment(body=body, target=_text(section, "target", "comment."))


def _names(section: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = section.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _wrong(f'"labels.{key}"', value, "a list of label names")
    names = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _wrong(f'"labels.{key}[{index}]"', item, "a non-empty label name")
        names.append(item.strip())
    return tuple(names)


def _labels(value: Any) -> Labels | None:
    if isinstance(value, list):  # a bare list means labels to add
        value = {"add": value}
    section = _section(value, "labels")
    if section is None:
        return None
    labels = Labels(add=_names(section, "add"), remove=_names(section, "remove"))
    return labels if labels.add or labels.remove else None


def _status(value: Any) -> Status | None:
    section = _section(value, "status")
    if section is None:
        return None
    state = _text(section, "state", "status.").strip().lower()
    if not state:
        raise ResultError(
            f'"status" has no state: {quote(dict(section))}',
            hint="a commit status is success, failure, pending or error",
        )
    return Status(
        state=state,
        description=_text(section, "description", "status."),
        context=_text(section, "context", "status."),
    )


def _commit(value: Any) -> CommitSuggestion | None:
    section = _section(value, "commit")
    if section is None:
        return None
    diff = _text(section, "diff", "commit.")
    if not diff.strip():
        raise ResultError(
            f'"commit" has no diff: {quote(dict(section))}',
            hint='write {"commit": {"message": "...", "diff": "unified diff"}}',
        )
    return CommitSuggestion(diff=diff, message=_text(section, "message", "commit."))


def _metadata(value: Any) -> Mapping[str, Any]:
    section = _section(value, "metadata")
    if section is None:
        return {}
    code = section.get("exit_code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise _wrong('"metadata.exit_code"', code, "a whole number")
    return dict(section)


def _error(value: Any) -> str:
    if value is None or value == "" or value is False:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("message"), str):
        return str(value["message"])
    return quote(value)
