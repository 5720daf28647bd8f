"""From a policy's verdict and the event to the writes to make: ``plan_writes`` (pure).

An event is always written back to the forge it came from, at the pull/merge request or
issue it is about (``place_of``). What cannot be written there (a status without a head
commit, a comment on a push) is skipped with a reason, like a denied action.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mecha.event import Event
from mecha.policy import Verdict
from mecha.writes import Place, Write, ledger_key

#: the forges Mecha writes back to
FORGES = ("github", "gitlab")
#: the event attributes ``place_of`` reads
PLACE_KEYS = (
    "repo_owner", "repo_name", "number", "project_id", "head_sha", "base_sha",
    "installation_id", "is_pull_request", "noteable_type",
)  # fmt: skip


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
        where = "an API task" if event is None else f'an event from "{event.source}"'
        return PlannedWrites(
            (), tuple(f"{name}: {where} has no forge to write to" for name in wanted)
        )
    writes: list[Write] = []
    skipped: list[str] = []
    for action in wanted:
        why = _cannot(action, place)
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


def _cannot(action: str, place: Place) -> str:
    if action == "status":
        return "" if place.head_sha else "the event names no head commit to set a status on"
    if not place.number:
        return "the event is not about a pull request, merge request or issue"
    return ""


def _write(action: str, verdict: Verdict, place: Place, event_id: str, worker: str) -> Write:
    fields: dict[str, Any] = {}
    if action == "comment" and verdict.comment is not None:
        fields = {"body": verdict.comment, "sticky": verdict.sticky}
    elif action == "labels" and verdict.labels is not None:
        fields = {"add": verdict.labels.add, "remove": verdict.labels.remove}
    elif action == "status" and verdict.status is not None:
        status = verdict.status
        context = status.context or f"mecha/{worker}"
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
