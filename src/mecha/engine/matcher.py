"""From a delivery to pending tasks: match every worker, hydrate once, render each prompt.

Per event, every worker's rules decide (fan-out: one task per matching worker) and each
taking worker's prompt is rendered (a missing key fails that worker alone).

Most events need nothing from outside, so ``ingest_batch`` (the group-commit writer) decides
them inside the very transaction that stores them: one synced commit per batch holds the
events, the decisions and the tasks. An event that some worker takes and whose pull request
diff must be fetched first is stored ``received`` and handed to ``accepted``, which matches
it in the background: the forge is asked once (a failure is recorded, never fatal), then the
outcome is written in a grouped commit. An event whose process died before that is still
``received`` and is matched again at the next start; the task dedup key (event:worker)
keeps that from making a second task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

from mecha.engine.batcher import Batcher
from mecha.engine.registry import LoadedWorker, WorkerRegistry
from mecha.errors import MechaError, MissingKey
from mecha.event import Delivery, Event, EventState, template_data
from mecha.forges.hydration import Hydration
from mecha.store import EventOutcome, Store
from mecha.task import NewTask, Task, task_context
from mecha.worker.matching import Decision, Outcome, decide

log = logging.getLogger(__name__)


#: asks the event's forge for the diff; None when there is nothing to add for this event
Hydrate = Callable[[Event], Awaitable[Hydration | None]]
#: whether an event gets a diff from its forge (a client is configured and the type fits)
WantsHydration = Callable[[Event], bool]
#: told of tasks just committed (from the writer thread or the loop: must be thread-safe)
OnTasks = Callable[[Sequence[Task]], None]
#: told of the events those tasks came from, just before (likewise thread-safe)
OnEvents = Callable[[Sequence[Event]], None]


class EventMatcher:
    """Matches submitted events in the background; ``close`` waits for those in flight."""

    def __init__(
        self,
        *,
        registry: WorkerRegistry,
        outcomes: Batcher[EventOutcome, list[Task]],
        reads: Executor,
        store: Store,
        hydrate: Hydrate | None = None,
        wants_hydration: WantsHydration | None = None,
        on_tasks: OnTasks | None = None,
        on_events: OnEvents | None = None,
        max_parallel: int = 32,
    ) -> None:
        self._store = store
        self._wants_hydration = wants_hydration
        self._registry = registry
        self._outcomes = outcomes
        self._reads = reads
        self._hydrate = hydrate
        self._on_tasks = on_tasks
        self._on_events = on_events
        self._limit = asyncio.Semaphore(max_parallel)
        self._inflight: set[asyncio.Task[None]] = set()
        self.matched = 0

    def ingest_batch(self, deliveries: Sequence[Delivery]) -> list[Event | None]:
        """Store ``deliveries`` (blocking: the writer thread), deciding all it can at once."""
        workers = self._registry.refresh()
        made: list[Task] = []
        stored = self._store.insert_events(
            deliveries, decide=lambda event: self._decide_now(event, workers), tasks_made=made
        )
        self.matched += sum(
            1 for e in stored if e is not None and e.state is not EventState.RECEIVED
        )
        if made and self._on_events is not None:
            taking = {task.event_id for task in made}
            self._on_events([e for e in stored if e is not None and e.id in taking])
        if made and self._on_tasks is not None:
            self._on_tasks(made)
        return stored

    def accepted(self, event: Event) -> None:
        """A stored event: match it in the background unless that is done already."""
        if event.state is EventState.RECEIVED:
            self.submit(event)

    def _decide_now(self, event: Event, workers: Sequence[LoadedWorker]) -> EventOutcome | None:
        try:
            decisions = _decisions(event, workers)
            taken = any(d.outcome is Outcome.MATCHED for d in decisions)
            if taken and self._wants_hydration is not None and self._wants_hydration(event):
                return None
            return plan(event, workers, decisions, None)
        except Exception:  # a bug must not lose the batch: match it later instead
            log.exception("matching event %s failed; it is matched again later", event.id)
            return None

    def submit(self, event: Event) -> None:
        """Match ``event`` soon; returns at once."""
        task = asyncio.get_running_loop().create_task(self._guarded(event))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def close(self) -> None:
        """Wait until every submitted event has been matched and written."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _guarded(self, event: Event) -> None:
        async with self._limit:
            try:
                await self._match(event)
            except Exception:  # a bug must not take the server down; the event stays received
                log.exception("matching event %s failed; it is retried at the next start", event.id)

    async def _match(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        workers = await loop.run_in_executor(self._reads, self._registry.refresh)
        decisions = _decisions(event, workers)
        hydrated: Hydration | None = None
        if self._hydrate is not None and any(d.outcome is Outcome.MATCHED for d in decisions):
            hydrated = await self._hydrate(event)
            if hydrated is not None:
                event = replace(event, attrs={**event.attrs, **hydrated.attrs})
        outcome = plan(event, workers, decisions, hydrated)
        made = await self._outcomes.add(outcome)
        self.matched += 1
        if made and self._on_events is not None:
            self._on_events([event])
        if made and self._on_tasks is not None:
            self._on_tasks(made)
        _log(event, outcome)


def _decisions(event: Event, workers: Sequence[LoadedWorker]) -> list[Decision]:
    return decide(
        [w.candidate for w in workers if not w.broken],
        source=event.source,
        type=event.type,
        data=template_data(event),
    )


def _log(event: Event, outcome: EventOutcome) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    for decision in outcome.decisions:
        log.info(
            "event %s %s: worker %s %s (%s)",
            event.id, event.type, decision.worker, decision.outcome, decision.reason,
        )  # fmt: skip


def plan(
    event: Event,
    workers: Sequence[LoadedWorker],
    decisions: Sequence[Decision],
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
    for decision in decisions:
        if decision.outcome is not Outcome.MATCHED:
            final.append(decision)
            continue
        made = _task(event, by_name[decision.worker], decision, data)
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


def _task(
    event: Event, worker: LoadedWorker, decision: Decision, data: Mapping[str, Any]
) -> NewTask | Decision:
    """The task for a matching worker, or a FAILED decision saying why its prompt failed."""
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
    return NewTask(worker=worker.name, event_id=event.id, prompt=prompt, context=context)


def _state(decisions: Sequence[Decision], tasks: Sequence[NewTask]) -> EventState:
    if tasks:
        return EventState.MATCHED
    if any(d.outcome is Outcome.FAILED for d in decisions):
        return EventState.FAILED
    return EventState.SKIPPED
