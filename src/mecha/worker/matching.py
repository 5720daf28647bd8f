"""Which workers take an event, and why the others do not (pure: values in, decisions out).

Every worker's every rule is looked at; a worker's first rule that matches and runs wins
(``auto: true``). A worker whose only matching rules say ``auto: false`` is *held*: matched,
recorded, never run. Unlike upstream, one event may start several workers (fan-out).

A ``source: cron`` rule takes only the ticks made for it (the worker's name as actor, the
rule's subject). Any other rule matches when its ``source`` equals the event's, one of its
``on`` types equals the event type (or matches it as a wildcard: ``pull_request.*``,
``*``), and every ``filter`` entry matches. A filter value is text or a list of texts (any
one may match); a text equals the attribute as upstream printed it (``true``/``false``,
``<nil>`` when absent) or, when it holds ``*``, ``?`` or ``[``, matches it as a glob
(``release/*``). For ``labels`` (and any list), it may match the whole text or any single
label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from mecha.event import render_value
from mecha.worker.trust import ACCESS_ERROR, ACCESS_LEVEL, command_miss, trust_miss

if TYPE_CHECKING:
    from mecha.worker.spec import EventRule, Trust

_GLOB = frozenset("*?[")
#: attributes whose text is a ", "-joined list, matched item by item as well
LIST_ATTRS = frozenset({"labels", "file_list"})


class Outcome(StrEnum):
    """What matching decided for one worker."""

    MATCHED = "matched"  # a task is created
    HELD = "held"  # matched only rules with auto: false
    NOT_MATCHED = "not_matched"
    FAILED = "failed"  # matched, but the task could not be made (e.g. the prompt failed)
    UNUSABLE = "unusable"  # the worker's registered definition no longer checks out


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """One worker's verdict on one event."""

    worker: str
    outcome: Outcome
    #: index (0-based) of the deciding rule; -1 when none matched
    rule: int = -1
    #: why, in words a user reads in ``mecha event show``
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    """What matching needs to know about one worker."""

    name: str
    rules: Sequence[EventRule]
    #: who may start it (None: the defaults)
    trust: Trust | None = None


def decide(
    candidates: Sequence[Candidate], *, source: str, type: str, data: Mapping[str, Any]
) -> list[Decision]:
    """One Decision per candidate, in the order given."""
    return [_decide_one(c, source=source, type=type, data=data) for c in candidates]


def needs_access(
    candidates: Sequence[Candidate], *, source: str, type: str, data: Mapping[str, Any]
) -> bool:
    """Whether a command rule fits this GitLab note but for its author's access level, which
    the note does not carry: the engine asks GitLab for it, then matches
    (``mecha.engine.pipeline``). False once it was asked (or failed to be)."""
    if source != "gitlab" or ACCESS_LEVEL in data or ACCESS_ERROR in data:
        return False
    for candidate in candidates:
        if candidate.trust is not None and candidate.trust.min == "anyone":
            continue
        for rule in candidate.rules:
            if (rule.command and not _miss(rule, source=source, type=type, data=data)
                    and not command_miss(rule.command, data)):  # fmt: skip
                return True
    return False


def wants_type(patterns: Sequence[str], type: str) -> bool:
    """True if ``type`` is one of ``patterns`` or matches one as a wildcard."""
    return any(p == type or (_is_glob(p) and fnmatchcase(type, p)) for p in patterns)


def _decide_one(
    candidate: Candidate, *, source: str, type: str, data: Mapping[str, Any]
) -> Decision:
    misses: list[str] = []
    held = -1
    for index, rule in enumerate(candidate.rules):
        miss = (
            _miss(rule, source=source, type=type, data=data)
            or _tick_miss(rule, candidate.name, data)
            or (command_miss(rule.command, data) if rule.command else "")
            or _trust_miss(rule, candidate.trust, data)
        )
        if miss:
            misses.append(f"rule {index + 1}: {miss}")
        elif rule.auto:
            return Decision(
                worker=candidate.name,
                outcome=Outcome.MATCHED,
                rule=index,
                reason=f"rule {index + 1} matched",
            )
        elif held < 0:
            held = index
    if held >= 0:
        return Decision(
            worker=candidate.name,
            outcome=Outcome.HELD,
            rule=held,
            reason=f"rule {held + 1} matched but says auto: false (not run)",
        )
    reason = "; ".join(misses) if misses else "the worker has no event rules"
    return Decision(worker=candidate.name, outcome=Outcome.NOT_MATCHED, reason=reason)


def _miss(rule: EventRule, *, source: str, type: str, data: Mapping[str, Any]) -> str:
    """Why ``rule`` does not match, or "" if it does."""
    if rule.source != source:
        return f"source is {source}, rule wants {rule.source}"
    if not wants_type(rule.on, type):
        return f"type {type} is not in on: [{', '.join(rule.on)}]"
    for key, wanted in rule.filter.items():
        patterns = wanted if isinstance(wanted, list) else [wanted]
        value = data.get(key)
        if not any(_value_matches(key, value, p) for p in patterns):
            shown = " or ".join(repr(p) for p in patterns)
            return f"filter {key}: wanted {shown}, event has {render_value(value)!r}"
    return ""


def _trust_miss(rule: EventRule, trust: Trust | None, data: Mapping[str, Any]) -> str:
    if rule.source == "cron":  # made by Mecha itself
        return ""
    min_level, forks, bots = (
        ("member", True, ()) if trust is None else (trust.min, trust.forks, trust.bots)
    )
    return trust_miss(command=bool(rule.command), min_level=min_level, forks=forks, bots=bots,
                      data=data)  # fmt: skip


def _tick_miss(rule: EventRule, worker: str, data: Mapping[str, Any]) -> str:
    """A cron rule takes only its own ticks: made for this worker (the actor) and this
    rule's subject. Another worker's tick with the same schedule is not its."""
    if rule.source != "cron":
        return ""
    if data.get("actor") != worker:
        return f"the tick is {data.get('actor')!r}'s, not this worker's"
    if data.get("subject") != rule.subject:
        return f"the tick's subject is {data.get('subject')!r}, rule has {rule.subject!r}"
    return ""


def _value_matches(key: str, value: Any, pattern: str) -> bool:
    text = render_value(value)
    if _text_matches(text, pattern):
        return True
    if isinstance(value, list | tuple):
        items = [render_value(item) for item in value]
    elif key in LIST_ATTRS and isinstance(value, str):
        items = [item.strip() for item in value.replace("\n", ",").split(",")]
    else:
        return False
    return any(_text_matches(item, pattern) for item in items if item)


def _text_matches(text: str, pattern: str) -> bool:
    return text == pattern or (_is_glob(pattern) and fnmatchcase(text, pattern))


def _is_glob(pattern: str) -> bool:
    return not _GLOB.isdisjoint(pattern)
