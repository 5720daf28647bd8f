"""From a policy's verdict and the event to the writes to make: ``plan_writes`` (pure).

An event is always written back to the forge it came from, at the pull/merge request or
issue it is about (``place_of``). What cannot be written there (a status without a head
commit, a comment on a push) is skipped with a reason, like a denied action. When the reason
is a field the forge's payload lacked, the reason names that field (``writeback_gaps``, which
`mecha event send` also uses to warn before it posts a payload).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mecha.event import Event
from mecha.policy.gate import Verdict, own_context
from mecha.policy.writes import Place, Write, ledger_key

#: the forges Mecha writes back to
FORGES = ("github", "gitlab")
#: the event attributes ``place_of`` reads
PLACE_KEYS = (
    "repo_owner", "repo_name", "number", "project_id", "head_sha", "base_sha",
    "installation_id", "is_pull_request", "noteable_type",
)  # fmt: skip


#: where each forge's payload names the repository (``repo_owner``/``repo_name``)
REPO_FIELDS = {"github": "repository.full_name", "gitlab": "project.path_with_namespace"}
_FOR_ALL = "anything"
_FOR_PLACE = "a comment, labels or a suggestion"
_FOR_STATUS = "a commit status"


@dataclass(frozen=True, slots=True)
class Gap:
    """A field write-back needs that the event's payload did not have."""

    #: as the forge's payload names it: ``repository.full_name``, ``object_attributes.iid``
    field: str
    #: what cannot be written without it
    needed_for: str


@dataclass(frozen=True, slots=True)
class PlannedWrites:
    """The writes a verdict allows, and why anything it allows cannot be written."""

    writes: tuple[Write, ...]
    skipped: tuple[str, ...]


def place_of(event: Event) -> Place | None:
    """Where ``event`` is written back, or None (a generic source, an API task)."""
    if event.source not in FORGES:
        return None
    attrs = event.attrs
    owner, name = _text(attrs, "repo_owner"), _text(attrs, "repo_name")
    if not name:
        return None
    number = attrs.get("number")
    return Place(
        forge=event.source,
        repo=f"{owner}/{name}" if owner else name,
        project_id=str(attrs.get("project_id") or "") if event.source == "gitlab" else "",
        number=number if isinstance(number, int) and number > 0 else 0,
        kind=_kind(event),
        head_sha=_text(attrs, "head_sha"),
        base_sha=_text(attrs, "base_sha"),
        installation_id=str(attrs.get("installation_id") or ""),
    )


def plan_writes(verdict: Verdict, *, event: Event | None, worker: str) -> PlannedWrites:
    """The writes for what ``verdict`` allows on ``event``'s pull request or issue."""
    wanted = _wanted(verdict)
    if not wanted:
        return PlannedWrites((), ())
    place = place_of(event) if event is not None else None
    if event is None or place is None:
        why = _nowhere(event)
        return PlannedWrites((), tuple(f"{name}: {why}" for name in wanted))
    gaps = writeback_gaps(event.source, event.type, event.attrs)
    writes: list[Write] = []
    skipped: list[str] = []
    for action in wanted:
        why = _cannot(action, place, gaps)
        if why:
            skipped.append(f"{action}: {why}")
        else:
            writes.append(_write(action, verdict, place, event.id, worker))
    return PlannedWrites(tuple(writes), tuple(skipped))


def _wanted(verdict: Verdict) -> list[str]:
    found = [
        ("comment", verdict.comment), ("labels", verdict.labels),
        ("status", verdict.status), ("suggestion", verdict.commit),
    ]  # fmt: skip
    return [action for action, value in found if value is not None]


def writeback_gaps(source: str, type: str, attrs: Mapping[str, Any]) -> tuple[Gap, ...]:
    """The fields a ``source`` event of ``type`` needs for write-back that its payload lacked
    (seen in the attributes the forge's parser made of it), as the payload names them.

    Nothing for sources that are never written back. A push has no pull request or issue,
    so only its head commit is asked for.
    """
    if source not in FORGES:
        return ()
    gaps = []
    if not _text(attrs, "repo_name"):
        gaps.append(Gap(REPO_FIELDS[source], _FOR_ALL))
    number, head = _fields(source, type.split(".", 1)[0], attrs)
    found = attrs.get("number")
    if number and not (isinstance(found, int) and found > 0):
        gaps.append(Gap(number, _FOR_PLACE))
    if head and not _text(attrs, "head_sha"):
        gaps.append(Gap(head, _FOR_STATUS))
    return tuple(gaps)


def _fields(source: str, kind: str, attrs: Mapping[str, Any]) -> tuple[str, str]:
    """(the payload field holding the number, the one holding the head commit) for an event
    of ``kind``; "" where that kind has none."""
    if source == "github":
        if kind.startswith("pull_request"):
            return "pull_request.number", "pull_request.head.sha"
        return {"issues": ("issue.number", ""), "issue_comment": ("issue.number", ""),
                "push": ("", "after")}.get(kind, ("", ""))  # fmt: skip
    if kind == "note":
        noteable = attrs.get("noteable_type")
        if noteable == "MergeRequest":
            return "merge_request.iid", "merge_request.last_commit.id"
        return {"Issue": ("issue.iid", ""), "Commit": ("", "commit.id")}.get(
            str(noteable), ("", "")
        )
    return {
        "merge_request": ("object_attributes.iid", "object_attributes.last_commit.id"),
        "issue": ("object_attributes.iid", ""),
        "push": ("", "after"),
        "tag_push": ("", "after"),
    }.get(kind, ("", ""))


def _nowhere(event: Event | None) -> str:
    """Why a result of ``event`` (None: an API task) cannot be written anywhere."""
    if event is None:
        return "an API task has no forge to write to"
    if event.source not in FORGES:
        only = "only GitHub and GitLab events are written back"
        return f'an event from "{event.source}" has no forge to write to ({only})'
    field = REPO_FIELDS[event.source]
    return f"the payload has no {field}, so there is no repository to write to"


def _cannot(action: str, place: Place, gaps: tuple[Gap, ...]) -> str:
    needed = _FOR_STATUS if action == "status" else _FOR_PLACE
    gap = next((gap.field for gap in gaps if gap.needed_for == needed), "")
    if action == "status":
        if place.head_sha:
            return ""
        if gap:
            return f"the payload has no {gap}, so there is no head commit to set a status on"
        return "the event names no head commit to set a status on"
    if place.number:
        return ""
    if gap:
        return f"the payload has no {gap}, so there is no pull request or issue to write to"
    return "the event is not about a pull request, merge request or issue"


def _write(action: str, verdict: Verdict, place: Place, event_id: str, worker: str) -> Write:
    fields: dict[str, Any] = {}
    if action == "comment" and verdict.comment is not None:
        fields = {"body": verdict.comment, "sticky": verdict.sticky}
    elif action == "labels" and verdict.labels is not None:
        fields = {"add": verdict.labels.add, "remove": verdict.labels.remove}
    elif action == "status" and verdict.status is not None:
        status = verdict.status
        context = status.context or own_context(worker)
        fields = {"state": status.state, "description": status.description, "context": context}
    elif action == "suggestion" and verdict.commit is not None:
        fields = {"body": verdict.commit.message, "diff": verdict.commit.diff}
    draft = Write(key="", worker=worker, action=action, place=place, **fields)
    target = draft.target + (f":{draft.context}" if action == "status" else "")
    key = ledger_key(
        event_id=event_id, worker=worker, action=action, target=target, head_sha=place.head_sha
    )
    return Write(key=key, worker=worker, action=action, place=place, **fields)


def _kind(event: Event) -> str:
    """ "pull" for pull/merge requests and comments on them, else "issue"."""
    kind = event.type.split(".", 1)[0]
    if event.source == "github":
        if kind.startswith("pull_request"):
            return "pull"
        if kind == "issue_comment":
            # a JSON true (or 1, as SQLite's json_extract gives it)
            return "pull" if event.attrs.get("is_pull_request") in (True, 1) else "issue"
        return "issue"
    if kind == "merge_request":
        return "pull"
    if kind == "note":
        return "pull" if event.attrs.get("noteable_type") == "MergeRequest" else "issue"
    return "issue"


def _text(attrs: Mapping[str, Any], key: str) -> str:
    value = attrs.get(key)
    return value if isinstance(value, str) else ""
