"""The path of every delivery, as named steps: receive, store, match, render, dispatch.

1. **receive**: the webhook route has verified the signature on the raw bytes and parsed
   the body (``mecha.forges``); ``Pipeline.receive`` queues the delivery for the writer.
2. **store**: on the store's one writer thread, a batch of deliveries is stored in one
   synced commit (``Pipeline.store``). Most events need nothing from outside, so they are
   matched right there and their decisions and tasks go into that same commit: the store
   is handed what was decided (``Arrival``) and records it; it never calls back.
3. **match** and **render** (``mecha.engine.matcher``, the one place matching happens):
   every worker's rules decide, each taking worker's prompt is rendered. An event that
   some worker takes and whose diff must be fetched first is stored ``received`` and
   matched afterwards (``Pipeline.match_later``): the forge is asked once (a failure is
   recorded, never fatal), then the outcome is written in a grouped commit. A worker whose
   prompt uses ``{{.diff_since_last}}`` also gets the diff since the head it last completed
   a task on for this pull request: the store says which head, the hydrator compares. So is
   a GitLab note a ``command:`` rule would take matched later: its author's access level is
   asked of GitLab first (``Hydrator.access``), since trust needs it; a lookup that fails
   refuses the command. An event still ``received`` when the process died is matched again
   at the next start; the task dedup key (event:worker) keeps that from making a second task.
4. **dispatch**: new tasks go to the dispatcher, their events to write-back (which needs
   them for the policy), in ``Pipeline.dispatch``.
5. **policy** and **write**: when a worker answers, ``mecha.engine.task_send`` has
   write-back apply the worker's policy and record the planned writes (synced) before the
   task is completed, then launch them (``mecha.engine.writeback``, ``write_tries``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any, Protocol

from mecha.engine import log_context, matcher, tracing
from mecha.engine.batcher import Batcher
from mecha.engine.registry import LoadedWorker, WorkerRegistry
from mecha.event import Delivery, Event, EventState, received
from mecha.forges.hydration import Hydration
from mecha.store import Arrival, EventOutcome, Store
from mecha.task import Task
from mecha.worker.matching import Decision

log = logging.getLogger(__name__)


class Hydrator(Protocol):
    """Fetches what an event lacks (a pull request's diff) from its forge."""

    def handles(self, event: Event) -> bool:
        """Whether this event gets a diff from its forge (a client is set, the type fits)."""
        ...

    async def hydrate(self, event: Event) -> Hydration | None:
        """What the forge adds to the event; None when there is nothing to add."""
        ...

    async def since_last(self, event: Event, last: str, full: Hydration) -> dict[str, str]:
        """For a worker whose last completed review of the event's pull request was at
        commit ``last`` ("" if none): the diff since then and what it is
        (``mecha.forges.incremental``), the full diff in ``full`` standing in when needed."""
        ...

    def asks_access(self, event: Event) -> bool:
        """Whether this event's author's access level can be asked of its forge (GitLab)."""
        ...

    async def access(self, event: Event) -> dict[str, Any]:
        """The author's access level as attributes (``author_access_level``, or
        ``author_access_error`` when it cannot be known); never raises for the forge."""
        ...


class TaskSink(Protocol):
    """Where new tasks go: the dispatcher (called from the writer thread or the loop)."""

    def submit_threadsafe(self, tasks: Sequence[Task]) -> None:
        """Queue ``tasks`` to be sent."""
        ...


class EventSink(Protocol):
    """Who keeps the events tasks came from: write-back (its policy needs them)."""

    def remember(self, events: Sequence[Event]) -> None:
        """Keep ``events`` (thread-safe)."""
        ...


class Pipeline:
    """Receives deliveries, stores and matches them, hands their tasks on."""

    def __init__(
        self,
        *,
        store: Store,
        registry: WorkerRegistry,
        writer: Executor,
        reads: Executor,
        tasks: TaskSink | None = None,
        events: EventSink | None = None,
        max_parallel: int = 32,
    ) -> None:
        self._store = store
        self._registry = registry
        self._reads = reads
        self._tasks = tasks
        self._events = events
        #: set by the composition root once the forge client exists (and again on SIGHUP)
        self.hydrator: Hydrator | None = None
        self._arrivals: Batcher[Delivery, Event | None] = Batcher(
            self.store, executor=writer, name="events"
        )
        self._outcomes: Batcher[EventOutcome, list[Task]] = Batcher(
            store.record_outcomes, executor=writer, name="outcomes"
        )
        self._limit = asyncio.Semaphore(max_parallel)
        self._inflight: set[asyncio.Task[None]] = set()
        #: events matched so far (for /health and /metrics)
        self.matched = 0
        #: Mecha's own account by source (learnt from the forges): its events start nothing
        self.own: dict[str, str] = {}

    @property
    def stored(self) -> int:
        """Deliveries stored so far (duplicates included: each was answered)."""
        return self._arrivals.items

    @property
    def commits(self) -> int:
        """Group commits that stored them."""
        return self._arrivals.batches

    def start(self) -> None:
        """Begin writing (from inside the running event loop)."""
        self._arrivals.start()
        self._outcomes.start()

    # 1. receive
    async def receive(self, delivery: Delivery) -> Event | None:
        """Store a verified delivery (synced); None if it is a duplicate. Matching follows."""
        event = await self._arrivals.add(delivery)
        if event is not None and event.state is EventState.RECEIVED:
            self.match_later(event)
        return event

    # 2. store (on the writer thread)
    def store(self, deliveries: Sequence[Delivery]) -> list[Event | None]:
        """Store ``deliveries`` in one commit, with every outcome that can be decided now."""
        workers = self._registry.refresh()
        now = time.time()
        arrivals = [self._arrive(received(d, now=now), workers) for d in deliveries]
        made = self._store.insert_arrivals(arrivals)
        pairs = list(zip(arrivals, made, strict=True))
        stored = [arrival.event if kept is not None else None for arrival, kept in pairs]
        self.matched += sum(1 for arrival, kept in pairs if kept is not None and arrival.outcome)
        tasks = [task for _, kept in pairs for task in kept or ()]
        if tasks:
            taking = {task.event_id for task in tasks}
            self.dispatch([e for e in stored if e is not None and e.id in taking], tasks)
        return stored

    def _arrive(self, event: Event, workers: Sequence[LoadedWorker]) -> Arrival:
        """The event with its outcome, unless it waits for a diff or its author's access
        level (or matching broke)."""
        with tracing.tracer.span("mecha.match", parent=_traceparent(event)) as span:
            span.set("mecha.event.id", event.id)
            arrival = self._decide(event, workers)
            span.set("mecha.event.state", arrival.event.state.value)
            return arrival

    def _decide(self, event: Event, workers: Sequence[LoadedWorker]) -> Arrival:
        try:
            decided = matcher.decisions(event, workers, self.own)
            hydrator = self.hydrator
            if hydrator is not None and self._asks_access(event, workers):
                return Arrival(event=event)
            if matcher.taken(decided) and hydrator is not None and hydrator.handles(event):
                return Arrival(event=event)
            outcome = matcher.plan(event, workers, decided, None)
        except Exception:  # a bug must not lose the batch: match it later instead
            log.exception("matching event %s failed; it is matched again later", event.id)
            return Arrival(event=event)
        return Arrival(event=replace(event, state=outcome.state), outcome=outcome)

    # 3. match and render, later (the diff first)
    def match_later(self, event: Event) -> None:
        """Match ``event`` in the background; returns at once."""
        task = asyncio.get_running_loop().create_task(self._guarded(event))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _guarded(self, event: Event) -> None:
        log_context.for_event(event.id)  # this asyncio task's lines are about the event
        async with self._limit:
            try:
                with tracing.tracer.span("mecha.match", parent=_traceparent(event)) as span:
                    span.set("mecha.event.id", event.id)
                    span.set("mecha.event.state", (await self._match(event)).value)
            except Exception:  # a bug must not take the server down; the event stays received
                log.exception("matching event %s failed; it is retried at the next start", event.id)

    async def _match(self, event: Event) -> EventState:
        loop = asyncio.get_running_loop()
        workers = await loop.run_in_executor(self._reads, self._registry.refresh)
        hydrated: Hydration | None = None
        since_last: dict[str, dict[str, str]] = {}
        hydrator = self.hydrator
        if hydrator is not None and self._asks_access(event, workers):
            # a GitLab command's trust needs its author's access level: asked first
            event = replace(event, attrs={**event.attrs, **await hydrator.access(event)})
            hydrated = Hydration(attrs={})  # the attributes changed: stored with the outcome
        decided = matcher.decisions(event, workers, self.own)
        if hydrator is not None and matcher.taken(decided):
            found = await hydrator.hydrate(event)
            if found is not None:
                event = replace(event, attrs={**event.attrs, **found.attrs})
                hydrated = found
                since_last = await self._since_last(hydrator, event, workers, decided, found)
        outcome = matcher.plan(event, workers, decided, hydrated, since_last)
        made = await self._outcomes.add(outcome)
        self.matched += 1
        if made:
            self.dispatch([event], made)
        _log(event, outcome)
        return outcome.state

    async def _since_last(
        self,
        hydrator: Hydrator,
        event: Event,
        workers: Sequence[LoadedWorker],
        decided: Sequence[Decision],
        hydrated: Hydration,
    ) -> dict[str, dict[str, str]]:
        """Incremental review, by worker whose prompt asks for it: the head each last
        completed a task on for this pull request (a store read), then the forge's
        comparison from there to the event's head, once per distinct head."""
        wanting = matcher.wanting_since_last(workers, decided)
        if not wanting:
            return {}
        loop = asyncio.get_running_loop()
        heads = await loop.run_in_executor(self._reads, self._reviewed_heads, event, wanting)
        distinct = sorted(set(heads.values()))
        found = await asyncio.gather(*(hydrator.since_last(event, h, hydrated) for h in distinct))
        by_head = dict(zip(distinct, found, strict=True))
        return {name: by_head[heads[name]] for name in wanting}

    def _reviewed_heads(self, event: Event, workers: Sequence[str]) -> dict[str, str]:
        """Each worker's last reviewed head of the event's pull request ("" if none)."""
        number = event.attrs.get("number")
        if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
            return dict.fromkeys(workers, "")
        return {name: self._store.last_reviewed_head(
                    name, source=event.source, repo=event.subject, number=number)
                for name in workers}  # fmt: skip

    def _asks_access(self, event: Event, workers: Sequence[LoadedWorker]) -> bool:
        hydrator = self.hydrator
        return (
            hydrator is not None
            and matcher.needs_access(event, workers, self.own)
            and hydrator.asks_access(event)
        )

    # 4. dispatch
    def dispatch(self, events: Sequence[Event], tasks: Sequence[Task]) -> None:
        """Hand new tasks to the dispatcher, and the events they came from to write-back."""
        if self._events is not None:
            self._events.remember(events)
        if self._tasks is not None:
            self._tasks.submit_threadsafe(tasks)

    async def finish_matching(self) -> None:
        """Wait until every event being matched has been matched and written."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def close(self) -> None:
        """Write what is queued, then stop taking deliveries and outcomes."""
        await self._outcomes.close()
        await self._arrivals.close()


def _traceparent(event: Event) -> str:
    """The span context of the event's delivery ("" when it was not traced)."""
    found = event.attrs.get(tracing.TRACEPARENT, "")
    return found if isinstance(found, str) else ""


def _log(event: Event, outcome: EventOutcome) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    for decision in outcome.decisions:
        log.info(
            "event %s %s: worker %s %s (%s)",
            event.id, event.type, decision.worker, decision.outcome, decision.reason,
            extra={"event_id": event.id, "worker": decision.worker},
        )  # fmt: skip
