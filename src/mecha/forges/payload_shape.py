"""The shape of the payload fields Mecha reads, per GitHub and GitLab event (pure).

``check_shape`` refuses (``WebhookError`` 400, naming the JSON path) a delivery of an event
type Mecha parses whose fields have the wrong JSON type, or that lacks the object the event is
about (``$.pull_request`` of a ``pull_request`` event). Event types not listed here (``star``,
``Pipeline Hook``, GitHub's ``ping``) are not checked: their fields are not read beyond the
common ones, and they are taken as they come.

What is required, and what may be null, follows the forges:

* GitHub: the webhook payload schemas (``octokit/webhooks``, ``payload-schemas/api.github.com``:
  ``action`` is always a string; ``pull_request.body``, ``issue.body`` and ``review.body``
  are ``string | null``) and ``github/rest-api-description#424``: ``head.repo`` is null once
  the fork is deleted.
* GitLab: ``lib/gitlab/hook_data/*_builder.rb`` in ``gitlab-org/gitlab``: ``description``
  and the merge request's ``source_project_id`` are database columns that may be null,
  ``source`` (``try(:hook_attrs)``) and ``last_commit`` (``&.hook_attrs``) are null when the
  source project or head commit is gone, and services set ``object_attributes.action`` from
  a variable that may be nil.

Only the event's own object (and GitHub's ``action``) is required. Other fields may be
missing: a payload written by hand that lacks, say, ``repository`` is taken, and the
write-back step names what it lacked (``mecha.policy.plan.writeback_gaps``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mecha.errors import WebhookError

#: problems listed in one refusal, at most
MAX_PROBLEMS = 3


@dataclass(frozen=True, slots=True)
class Shape:
    """What one JSON value must be: its type, and the fields or items it holds."""

    #: "object", "string", "integer", "boolean" or "array"
    kind: str
    required: bool = False
    null: bool = False
    fields: tuple[tuple[str, Shape], ...] = ()
    items: Shape | None = None


def obj(**fields: Shape) -> Shape:
    """An object whose listed ``fields`` have these shapes (others are not looked at)."""
    return Shape("object", fields=tuple(fields.items()))


def array(items: Shape) -> Shape:
    """An array of ``items``."""
    return Shape("array", items=items)


TEXT = Shape("string")
INTEGER = Shape("integer")
BOOLEAN = Shape("boolean")


def required(shape: Shape) -> Shape:
    """``shape``, and the field must be there."""
    return replace(shape, required=True)


def nullable(shape: Shape) -> Shape:
    """``shape``, or null."""
    return replace(shape, null=True)


# ---------------------------------------------------------------- GitHub

_GH_LABELS = array(obj(name=TEXT))
_GH_PULL_REQUEST = obj(
    number=INTEGER, title=TEXT, body=nullable(TEXT), draft=BOOLEAN, author_association=TEXT,
    labels=_GH_LABELS,
    head=obj(sha=TEXT, ref=TEXT, repo=nullable(obj(full_name=TEXT))),
    base=obj(sha=TEXT, ref=TEXT, repo=obj(full_name=TEXT)),
)  # fmt: skip
_GH_COMMON = {
    "repository": obj(full_name=TEXT, name=TEXT, owner=obj(login=TEXT)),
    "sender": obj(login=TEXT, type=TEXT),
    "installation": obj(id=INTEGER),
}
_GH_ACTION = required(TEXT)
_GH_COMMENT = obj(id=INTEGER, body=TEXT, author_association=TEXT, user=obj(login=TEXT))
_GH_PR_EVENT = {"action": _GH_ACTION, "number": INTEGER, "pull_request": required(_GH_PULL_REQUEST)}
_GH_ISSUE = obj(
    number=INTEGER, title=TEXT, body=nullable(TEXT), labels=_GH_LABELS, author_association=TEXT,
    pull_request=obj(),
)  # fmt: skip

#: by X-GitHub-Event
# fmt: off
GITHUB: Mapping[str, Shape] = {
    event: obj(**fields, **_GH_COMMON)
    for event, fields in {
        "pull_request": _GH_PR_EVENT,
        "pull_request_review_comment": {**_GH_PR_EVENT, "comment": required(_GH_COMMENT)},
        "pull_request_review": {
            **_GH_PR_EVENT,
            "review": required(obj(
                id=INTEGER, node_id=TEXT, body=nullable(TEXT), state=TEXT,
                author_association=TEXT, user=obj(login=TEXT),
            )),
        },
        "push": {
            "action": TEXT, "ref": TEXT, "after": TEXT, "compare": TEXT,
            "commits": array(obj(id=TEXT, message=TEXT)),
        },
        "issues": {"action": _GH_ACTION, "issue": required(_GH_ISSUE)},
        "issue_comment": {
            "action": _GH_ACTION, "issue": required(_GH_ISSUE), "comment": required(_GH_COMMENT),
        },
    }.items()
}
# fmt: on

# ---------------------------------------------------------------- GitLab

_GL_LABELS = array(obj(title=TEXT))
_GL_PATH = obj(path_with_namespace=TEXT)
_GL_MERGE_REQUEST = obj(
    iid=INTEGER, title=TEXT, description=nullable(TEXT), state=TEXT, action=nullable(TEXT),
    source_branch=TEXT, target_branch=TEXT, labels=_GL_LABELS,
    draft=BOOLEAN, work_in_progress=BOOLEAN,
    last_commit=nullable(obj(id=TEXT)), diff_refs=nullable(obj(base_sha=nullable(TEXT))),
    source_project_id=nullable(INTEGER), target_project_id=INTEGER,
    source=nullable(_GL_PATH), target=_GL_PATH,
)  # fmt: skip
_GL_ISSUE = obj(
    iid=INTEGER, title=TEXT, description=nullable(TEXT), state=TEXT, action=nullable(TEXT),
    labels=_GL_LABELS, confidential=BOOLEAN,
)  # fmt: skip
_GL_COMMON = {
    "project": obj(path_with_namespace=TEXT, id=INTEGER),
    "project_id": INTEGER,
    "user_username": TEXT,
    "user": obj(username=TEXT, id=INTEGER),
}
_GL_PUSH = {
    "ref": TEXT, "after": nullable(TEXT), "commits": array(obj(id=TEXT, message=TEXT)),
}  # fmt: skip
_GL_NOTE = {
    "object_attributes": required(obj(
        id=INTEGER, author_id=INTEGER, noteable_type=TEXT, note=nullable(TEXT),
        action=nullable(TEXT),
    )),
}  # fmt: skip

#: by the kind Mecha gives an X-Gitlab-Event (``mecha.forges.gitlab.webhook``); a note's is
#: ``gitlab_shape``'s, which adds the object it is on
GITLAB: Mapping[str, Shape] = {
    kind: obj(**fields, **_GL_COMMON)
    for kind, fields in {
        "merge_request": {"object_attributes": required(_GL_MERGE_REQUEST), "labels": _GL_LABELS},
        # without object_attributes an issue hook has no number (upstream took it so)
        "issue": {"object_attributes": _GL_ISSUE, "labels": _GL_LABELS},
        "note": _GL_NOTE,
        "push": _GL_PUSH,
        "tag_push": _GL_PUSH,
    }.items()
}
#: the object a note's payload carries, by its ``noteable_type``
NOTE_OBJECTS: Mapping[str, str] = {
    "MergeRequest": "merge_request",
    "Issue": "issue",
    "Commit": "commit",
}
#: a note's shape by its ``noteable_type``: only the object it is on is read
_GL_NOTES: Mapping[str, Shape] = {
    noteable: obj(**_GL_NOTE, **{NOTE_OBJECTS[noteable]: shape}, **_GL_COMMON)
    for noteable, shape in {
        "MergeRequest": _GL_MERGE_REQUEST,
        "Issue": _GL_ISSUE,
        "Commit": obj(id=TEXT),
    }.items()
}


def noteable_of(payload: dict[str, Any]) -> str:
    """What a GitLab note is on: its ``noteable_type`` as sent, else the kind whose object
    the payload carries (``merge_request``, ``issue``, ``commit``), as upstream read
    whichever was present; "" if neither says."""
    note = payload.get("object_attributes")
    sent = note.get("noteable_type") if isinstance(note, dict) else None
    if isinstance(sent, str) and sent:
        return sent
    for noteable, field in NOTE_OBJECTS.items():
        if isinstance(payload.get(field), dict):
            return noteable
    return ""


def gitlab_shape(kind: str, payload: dict[str, Any]) -> Shape:
    """The shape of a GitLab ``kind`` payload (a kind in ``GITLAB``)."""
    if kind == "note" and (noteable := noteable_of(payload)) in _GL_NOTES:
        return _GL_NOTES[noteable]
    return GITLAB[kind]


# ---------------------------------------------------------------- checking


def check_shape(payload: dict[str, Any], shape: Shape, *, forge: str, event: str) -> None:
    """Refuse (400) ``payload``, a ``forge`` delivery of ``event``, unless it has ``shape``."""
    found = shape_problems(payload, shape)
    if not found:
        return
    message = "; ".join(found[:MAX_PROBLEMS])
    if len(found) > MAX_PROBLEMS:
        message += "; and more"
    raise WebhookError(
        400,
        message,
        hint=f"{forge} sends {event} deliveries with these fields as JSON of these types; fix "
        "the payload (`mecha event samples` lists real ones to compare with), or post other "
        "JSON to a generic source",
    )


def shape_problems(value: Any, shape: Shape) -> list[str]:
    """How ``value`` differs from ``shape`` (a few ways at most), each with its JSON path."""
    found: list[str] = []
    _check(value, shape, "$", found)
    return found


def _check(value: Any, shape: Shape, path: str, found: list[str]) -> None:
    kind = json_kind(value)
    if kind != shape.kind:
        if not (kind == "null" and shape.null):
            found.append(f"{path}: expected {_NAMES[shape.kind]}, got {_NAMES[kind]}")
        return
    _check_fields(value, shape, path, found)
    if shape.items is not None:
        for index, item in enumerate(value):
            if len(found) > MAX_PROBLEMS:
                return
            _check(item, shape.items, f"{path}[{index}]", found)


def _check_fields(value: dict[str, Any], shape: Shape, path: str, found: list[str]) -> None:
    for key, field in shape.fields:
        if len(found) > MAX_PROBLEMS:
            return
        if key not in value:
            if field.required:
                found.append(
                    f"{path}.{key}: expected {_NAMES[field.kind]}, got nothing (it is missing)"
                )
            continue
        item = value[key]
        # the common case, a leaf of the right type, without a call (this runs per delivery)
        if field.fields or field.items is not None or type(item) is not _TYPES[field.kind]:
            _check(item, field, f"{path}.{key}", found)


def json_kind(value: Any) -> str:
    """The JSON type of a parsed value: "object", "array", "string", "integer", "number"
    (orjson's floats: a fraction, an exponent, or an integer beyond 64 bits), "boolean",
    "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    kind = _KINDS.get(type(value))  # orjson makes exact types; a subclass is looked up
    if kind is None:
        kind = next((name for cls, name in _KINDS.items() if isinstance(value, cls)), "number")
    return kind


_KINDS = {dict: "object", list: "array", str: "string", int: "integer", float: "number"}
_TYPES = {kind: cls for cls, kind in _KINDS.items()} | {"boolean": bool}
_NAMES = {
    "object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
    "number": "a number (not a 64-bit integer)", "boolean": "a boolean", "null": "null",
}  # fmt: skip
