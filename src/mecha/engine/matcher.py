"""Matching, in one place: which workers take an event, and the outcome to record (pure).

Per event, every worker's rules decide (fan-out: one task per matching worker) and each
taking worker's prompt is rendered (a missing key fails that worker alone). A broken worker
is recorded as unusable; an event no worker takes is skipped; one whose every taking
worker's prompt failed has failed. ``mecha.engine.pipeline`` calls these twice over: as the
event is stored (most events), or after its diff is fetched. ``wanting_since_last`` names
the workers whose prompt uses incremental review's attributes; ``plan`` renders each of them
with its own (``mecha.forges.incremental``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from mecha.engine.registry import LoadedWorker
from mecha.errors import MechaError, MissingKey
from mecha.event import Event, EventState, template_data
from mecha.forges.hydration import Hydration
from mecha.forges.incremental import SINCE_LAST_ATTRS
from mecha.store import EventOutcome
from mecha.task import FlowMark, NewTask, task_context
from mecha.worker.matching import Decision, Outcome, decide
from mecha.worker.matching import needs_access as needs_access_of
from mecha.worker.trust import command_args

#: a prompt that names an incremental-review attribute
_SINCE_LAST = re.compile(r"\b(?:" + "|".join(SINCE_LAST_ATTRS) + r")\b")


def decisions(
    event: Event, workers: Sequence[LoadedWorker], own: Mapping[str, str] | None = None
) -> list[Decision]:
    """Each usable worker's decision about ``event`` (its rules, in order). ``own``: Mecha's
    own account by source; an event it caused starts no worker (no bot loops)."""
    me = (own or {}).get(event.source, "")
    if me and event.actor.lower() == me.lower():
        why = (f"trust: the sender {event.actor} is Mecha's own {event.source} account (what "
               "Mecha writes never starts a worker)")  # fmt: skip
        return [Decision(worker=w.name, outcome=Outcome.NOT_MATCHED, reason=why)
                for w in workers if not w.broken]  # fmt: skip
    return decide(
        [w.candidate for w in workers if not w.broken],
        source=event.source,
        type=event.type,
        data=template_data(event),
    )


def needs_access(
    event: Event, workers: Sequence[LoadedWorker], own: Mapping[str, str] | None = None
) -> bool:
    """Whether a worker's command rule waits for the GitLab note author's access level
    (asked of the forge before matching; ``mecha.worker.matching.needs_access``)."""
    me = (own or {}).get(event.source, "")
    if event.source != "gitlab" or (me and event.actor.lower() == me.lower()):
        return False
    return needs_access_of(
        [w.candidate for w in workers if not w.broken], source=event.source, type=event.type,
        data=template_data(event),
    )  # fmt: skip


def taken(decided: Sequence[Decision]) -> bool:
    """Whether some worker takes the event."""
    return any(d.outcome is Outcome.MATCHED for d in decided)


def wanting_since_last(workers: Sequence[LoadedWorker], decided: Sequence[Decision]) -> list[str]:
    """The workers taking the event whose rule's prompt names an incremental-review attribute
    (``diff_since_last``, ``last_reviewed_sha``, …): only they cost a store read and a
    comparison. A name in the text is enough (a guard, a comment): the check errs on asking."""
    by_name = {w.name: w for w in workers}
    wanting = []
    for decision in decided:
        worker = by_name.get(decision.worker)
        if decision.outcome is not Outcome.MATCHED or worker is None:
            continue
        prompts = worker.prompts
        if decision.rule < len(prompts) and _SINCE_LAST.search(prompts[decision.rule].source):
            wanting.append(worker.name)
    return wanting


def plan(
    event: Event,
    workers: Sequence[LoadedWorker],
    decided: Sequence[Decision],
    hydrated: Hydration | None,
    since_last: Mapping[str, Mapping[str, str]] | None = None,
) -> EventOutcome:
    """The outcome to record: decisions (broken workers and failed prompts included), tasks.

    ``since_last``: by worker, the incremental-review attributes its prompt sees besides the
    event's (``wanting_since_last``); its decision's reason says what they hold."""
    by_name = {w.name: w for w in workers}
    data = template_data(event)
    since_last = since_last or {}
    final: list[Decision] = [
        Decision(worker=w.name, outcome=Outcome.UNUSABLE, reason=w.broken)
        for w in workers
        if w.broken
    ]
    tasks: list[NewTask] = []
    for decision in decided:
        if decision.outcome is not Outcome.MATCHED:
            final.append(decision)
            continue
        extra = since_last.get(decision.worker)
        seen = {**data, **extra} if extra else data
        made = render(event, by_name[decision.worker], decision, seen)
        if isinstance(made, NewTask):
            tasks.append(made)
            final.append(replace(decision, reason=f"{decision.reason}; {_incremental(extra)}")
                         if extra else decision)  # fmt: skip
        else:
            final.append(made)
    final.sort(key=lambda d: d.worker)
    state = _state(final, tasks)
    errors = [hydrated.error] if hydrated is not None and hydrated.error else []
    if state is EventState.FAILED:
        errors += [f"{d.worker}: {d.reason}" for d in final if d.outcome is Outcome.FAILED]
    attrs = dict(event.attrs) if hydrated is not None else None
    return EventOutcome(
        event_id=event.id, state=state, decisions=final, tasks=tasks,
        error="; ".join(errors), attrs=attrs,
    )  # fmt: skip


def render(
    event: Event, worker: LoadedWorker, decision: Decision, data: Mapping[str, Any]
) -> NewTask | Decision:
    """The task for a matching worker, or a FAILED decision saying why its prompt failed."""
    rule = worker.spec.events[decision.rule] if worker.spec is not None else None
    if rule is not None and rule.command:
        args = command_args(str(data.get("comment") or ""), rule.command)
        data = {**data, "command": rule.command, "command_args": args or ""}
    try:
        prompt = worker.prompts[decision.rule].render(data)
    except MissingKey as exc:
        why = f"prompt of rule {decision.rule + 1} uses {exc.key}, which this event lacks"
        if exc.key.lstrip(".") in ("diff", "file_list", *SINCE_LAST_ATTRS):
            why += (
                f" (the diff is fetched from {event.source} only when a token is set in "
                "secrets.yml; see `mecha event show` for a fetch error)"
            )
        return replace(decision, outcome=Outcome.FAILED, reason=why)
    except MechaError as exc:
        return replace(decision, outcome=Outcome.FAILED, reason=f"prompt failed: {exc.message}")
    try:
        flow = _flow(event, worker, data)
    except MissingKey as exc:
        why = (f"flow.key uses {exc.key}, which this {event.source} {event.type} event lacks "
               "(write a key every event the worker takes has, e.g. {{.subject}})")  # fmt: skip
        return replace(decision, outcome=Outcome.FAILED, reason=why)
    except MechaError as exc:
        return replace(decision, outcome=Outcome.FAILED, reason=f"flow.key failed: {exc.message}")
    context = task_context(
        source=event.source, actor=event.actor, subject=event.subject, attrs=event.attrs
    )
    if rule is not None and rule.command:  # a command's task: acknowledged as it starts
        context["command"] = rule.command
    return NewTask(worker=worker.name, event_id=event.id, prompt=prompt, context=context, flow=flow)


def _flow(event: Event, worker: LoadedWorker, data: Mapping[str, Any]) -> FlowMark | None:
    """The task's place under its worker's ``flow:`` (None without one)."""
    flow = worker.spec.flow if worker.spec is not None else None
    if flow is None or worker.flow_key is None:
        return None
    key = worker.flow_key.render(data).strip()
    return FlowMark(
        key=key, at=event.created_at, supersede=flow.supersede, debounce=flow.debounce_seconds
    )


def _incremental(attrs: Mapping[str, str]) -> str:
    """What a worker's ``diff_since_last`` holds, for its decision's reason."""
    last = attrs.get("last_reviewed_sha", "")
    if last:
        return f"diff since last review: the changes since {last[:12]}"
    why = attrs.get("diff_since_last_fallback", "")
    return f"diff since last review: the full diff ({why})"


def _state(decisions: Sequence[Decision], tasks: Sequence[NewTask]) -> EventState:
    if tasks:
        return EventState.MATCHED
    if any(d.outcome is Outcome.FAILED for d in decisions):
        return EventState.FAILED
    return EventState.SKIPPED
