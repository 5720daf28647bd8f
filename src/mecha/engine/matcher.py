"""Matching, in one place: which workers take an event, and the outcome to record (pure).

Per event, every worker's rules decide (fan-out: one task per matching worker) and each
taking worker's prompt is rendered (a missing key fails that worker alone). A broken worker
is recorded as unusable; an event no worker takes is skipped; one whose every taking
worker's prompt failed has failed. ``mecha.engine.pipeline`` calls these twice over: as the
event is stored (most events), or after its diff is fetched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from mecha.engine.registry import LoadedWorker
from mecha.errors import MechaError, MissingKey
from mecha.event import Event, EventState, template_data
from mecha.forges.hydration import Hydration
from mecha.store import EventOutcome
from mecha.task import NewTask, task_context
from mecha.worker.matching import Decision, Outcome, decide
from mecha.worker.matching import needs_access as needs_access_of
from mecha.worker.trust import command_args


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
    if me and event.actor.lower() == me.lower():
        return False
    return needs_access_of(
        [w.candidate for w in workers if not w.broken], source=event.source, type=event.type,
        data=template_data(event),
    )  # fmt: skip


def taken(decided: Sequence[Decision]) -> bool:
    """Whether some worker takes the event."""
    return any(d.outcome is Outcome.MATCHED for d in decided)


def plan(
    event: Event,
    workers: Sequence[LoadedWorker],
    decided: Sequence[Decision],
    hydrated: Hydration | None,
) -> EventOutcome:
    """The outcome to record: decisions (broken workers and failed prompts included), tasks."""
    by_name = {w.name: w for w in workers}
    data = template_data(event)
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
        made = render(event, by_name[decision.worker], decision, data)
        if isinstance(made, NewTask):
            tasks.append(made)
            final.append(decision)
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
        if exc.key.lstrip(".") in ("diff", "file_list"):
            why += (
                f" (the diff is fetched from {event.source} only when a token is set in "
                "secrets.yml; see `mecha event show` for a fetch error)"
            )
        return replace(decision, outcome=Outcome.FAILED, reason=why)
    except MechaError as exc:
        return replace(decision, outcome=Outcome.FAILED, reason=f"prompt failed: {exc.message}")
    context = task_context(
        source=event.source, actor=event.actor, subject=event.subject, attrs=event.attrs
    )
    if rule is not None and rule.command:  # a command's task: acknowledged as it starts
        context["command"] = rule.command
    return NewTask(worker=worker.name, event_id=event.id, prompt=prompt, context=context)


def _state(decisions: Sequence[Decision], tasks: Sequence[NewTask]) -> EventState:
    if tasks:
        return EventState.MATCHED
    if any(d.outcome is Outcome.FAILED for d in decisions):
        return EventState.FAILED
    return EventState.SKIPPED
