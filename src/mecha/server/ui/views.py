"""What the pages show, shaped from store records (pure): a state's colour, an event's label,
a write's link on its forge, a task's policy decisions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mecha.event import Event
from mecha.store.records import WriteRecord
from mecha.timeline import Step, TimelineEntry

#: a state's colour class (the CSS has one per tone)
TONES = {
    "received": "info", "matched": "info", "dispatched": "info", "pending": "info",
    "running": "busy", "calling": "busy", "planned": "info", "busy": "busy",
    "completed": "ok", "done": "ok", "online": "ok", "allowed": "ok",
    "failed": "bad", "dead-letter": "bad", "error": "bad", "denied": "bad",
    "cancelled": "muted", "superseded": "muted", "skipped": "muted", "dry-run": "muted",
    "offline": "muted", "held": "warn", "unmatched": "muted", "waiting": "warn",
}  # fmt: skip


def tone(state: str) -> str:
    """The colour class of a state ("muted" for one it does not know)."""
    return TONES.get(state, "muted")


def event_label(event: Event) -> str:
    """``owner/name#12``, the repository alone, or "" when the event names neither."""
    number = event.attrs.get("number")
    if event.subject and isinstance(number, int) and number:
        return f"{event.subject}#{number}"
    return event.subject


@dataclass(frozen=True, slots=True)
class Decision:
    """One policy decision on a task's result: allowed, denied or skipped, and why."""

    verdict: str
    reason: str
    task_id: str
    at: float


def decisions(steps: Sequence[TimelineEntry]) -> list[Decision]:
    """The policy decisions among ``steps``, in order."""
    found = []
    for step in steps:
        if step.step != Step.POLICY:
            continue
        verdict, _, reason = step.detail.partition(": ")
        found.append(Decision(verdict=verdict, reason=reason, task_id=step.task_id, at=step.at))
    return found


def write_link(record: WriteRecord, forge_web: Mapping[str, str]) -> str:
    """The page on the forge showing what the write made ("" for a write not made)."""
    place = record.write.place
    base = forge_web.get(place.forge, "").rstrip("/")
    if not base or record.state.value != "done" or not place.repo:
        return ""
    if record.write.action == "status" and place.head_sha:
        return f"{base}/{place.repo}/commit/{place.head_sha}"
    gitlab = place.forge == "gitlab"
    if gitlab:
        page = f"{base}/{place.repo}/-/{'merge_requests' if place.kind == 'pull' else 'issues'}"
    else:
        page = f"{base}/{place.repo}/{'pull' if place.kind == 'pull' else 'issues'}"
    page += f"/{place.number}"
    if record.write.action == "comment" and record.remote_id.isdigit():
        page += f"#note_{record.remote_id}" if gitlab else f"#issuecomment-{record.remote_id}"
    return page


def write_summary(record: WriteRecord) -> str:
    """What a write does, in a few words."""
    write = record.write
    if write.action == "labels":
        parts = [f"+{name}" for name in write.add] + [f"-{name}" for name in write.remove]
        return "labels " + " ".join(parts)
    if write.action == "status":
        return f"status {write.state} ({write.context})"
    if write.action == "reaction":
        return f"reaction {write.body}"
    return write.action


def attribute_rows(attrs: Mapping[str, Any]) -> list[tuple[str, Any, bool]]:
    """(name, value, long) for each attribute, by name; long values go in a block."""
    rows = []
    for name in sorted(attrs):
        value = attrs[name]
        long = not isinstance(value, str | int | float | bool) or (
            isinstance(value, str) and (len(value) > 120 or "\n" in value)
        )
        rows.append((name, value, long))
    return rows
