"""Schedules: each ``source: cron`` rule ticks while `mecha serve` runs (upstream's cron
trigger, wired in).

A tick is a delivery like any webhook's, through the same pipeline: source ``cron``, type
``tick``, actor the worker's name, subject the rule's ``subject``, attribute ``tick_time``
(RFC 3339, in the schedule's zone). Its delivery id is a hash of
``worker:subject:unix time``, so the store's unique (source, delivery id) index makes a
tick once: a restart that looks at the same time again, or a second node on the same
database, finds it stored and makes nothing. Only the rule it was made for takes it
(``mecha.worker.matching``).

- **overlap: skip** (the default): while a task of an earlier tick of the same rule is
  pending or running, a new tick is stored ``skipped``, with the reason on the worker's
  decision (``mecha event show``). ``overlap: queue`` makes the task anyway; it waits for
  the worker's concurrency like any other.
- **catch_up: false** (the default): ticks missed while no serve ran are not made.
  ``catch_up: true``: at start, the last tick due since the worker was registered is made,
  once (if a node made it already, it is a duplicate and nothing happens).
- A clock jump (a suspended laptop) makes only the latest of the ticks it skipped over;
  the others are counted (``ticks_dropped``).

``Ticker.advance(now)`` does one look at the time given: the tests drive it with a fake
clock; ``start`` runs the loop on the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from mecha.cron import Schedule, ScheduleError, parse_schedule
from mecha.engine.registry import LoadedWorker, WorkerRegistry
from mecha.event import Delivery, Event, EventState, received
from mecha.store import Arrival, EventOutcome, Store
from mecha.task import TaskState
from mecha.worker.matching import Decision, Outcome

log = logging.getLogger(__name__)

#: the longest sleep between looks (a worker added meanwhile is seen by then)
LOOK_EVERY = 30.0
UNFINISHED = (TaskState.PENDING, TaskState.RUNNING)


@dataclass(frozen=True, kw_only=True)
class Slot:
    """One cron rule of one worker."""

    worker: str
    rule: int
    subject: str
    schedule: Schedule
    overlap: str
    catch_up: bool
    #: when the worker was registered: no catch-up tick from before
    since: float


@dataclass(frozen=True, kw_only=True)
class Fired:
    """One tick made: what became of it."""

    worker: str
    subject: str
    at: float
    #: "sent" (stored, matched), "duplicate" (stored already), "skipped" (overlap: skip)
    outcome: str


def slots_of(workers: Sequence[LoadedWorker], local: tzinfo = UTC) -> list[Slot]:
    """Every usable worker's cron rules."""
    found: list[Slot] = []
    for worker in workers:
        if worker.spec is None or worker.broken:
            continue
        for index, rule in enumerate(worker.spec.events):
            if rule.source != "cron":
                continue
            try:
                schedule = parse_schedule(rule.schedule, rule.tz, local)
            except ScheduleError as exc:  # checked at add: a zone database that changed
                log.error("worker %s rule %d: %s", worker.name, index + 1, exc)
                continue
            found.append(Slot(
                worker=worker.name, rule=index, subject=rule.subject, schedule=schedule,
                overlap=rule.overlap, catch_up=rule.catch_up, since=worker.created_at,
            ))  # fmt: skip
    return found


def tick_delivery(slot: Slot, at: float) -> Delivery:
    """The delivery of ``slot``'s tick at the unix time ``at``."""
    key = f"{slot.worker}:{slot.subject}:{int(at)}"
    tick_time = datetime.fromtimestamp(at, slot.schedule.zone).isoformat(timespec="seconds")
    attrs = {"tick_time": tick_time, "schedule": slot.schedule.text}
    body = {"worker": slot.worker, "subject": slot.subject, **attrs}
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Delivery(
        source="cron", type="tick", delivery_id=f"tick-{digest}",
        actor=slot.worker, subject=slot.subject, attrs=attrs,
        raw=json.dumps(body, sort_keys=True).encode(),
    )  # fmt: skip


class Ticker:
    """Makes the ticks of every worker's cron rules as their times come."""

    def __init__(
        self,
        *,
        store: Store,
        registry: WorkerRegistry,
        receive: Callable[[Delivery], Awaitable[Event | None]],
        writer: Executor,
        reads: Executor,
        local: tzinfo = UTC,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._registry = registry
        self._receive = receive
        self._writer = writer
        self._reads = reads
        self._local = local
        self._clock = clock
        self._last: float | None = None
        self._task: asyncio.Task[None] | None = None
        #: what the ticks became, for /metrics and /health
        self.counts = {"ticks": 0, "ticks_skipped": 0, "ticks_dropped": 0}

    async def start(self) -> None:
        """Look now (the catch-up ticks), then at each tick's time, until ``stop``."""
        await self.advance(self._clock())
        self._task = asyncio.create_task(self._run(), name="mecha-ticks")

    async def stop(self) -> None:
        """Stop looking (a tick being made is finished first)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def advance(self, now: float) -> list[Fired]:
        """Make every tick due in (the last look, ``now``]; the first look makes only the
        catch-up ticks."""
        slots = await self._slots()
        since, self._last = self._last, now
        fired: list[Fired] = []
        for slot in slots:
            due = self._due(slot, since, now)
            if due is not None:
                fired.append(await self._tick(slot, due))
        return fired

    async def _run(self) -> None:
        while True:
            slots = await self._slots()
            last = self._last if self._last is not None else self._clock()
            wait = LOOK_EVERY
            if slots:
                wait = min(wait, min(s.schedule.after(last) for s in slots) - self._clock())
            await asyncio.sleep(max(0.0, wait))
            try:
                await self.advance(self._clock())
            except Exception:  # a store that failed: the next look tries again
                log.exception("schedules: making the due ticks failed")

    async def _slots(self) -> list[Slot]:
        loop = asyncio.get_running_loop()
        workers = await loop.run_in_executor(self._reads, self._registry.refresh)
        return slots_of(workers, self._local)

    def _due(self, slot: Slot, since: float | None, now: float) -> float | None:
        if since is None:  # the first look: only a catch-up tick
            if not slot.catch_up:
                return None
            last = slot.schedule.before(now)
            return last if last is not None and last > slot.since else None
        due = slot.schedule.between(since, now, limit=10_000)
        if len(due) > 1:
            self.counts["ticks_dropped"] += len(due) - 1
            log.warning("worker %s (%s): %d ticks missed while the clock jumped; making the "
                        "last", slot.worker, slot.subject, len(due) - 1)  # fmt: skip
        return due[-1] if due else None

    async def _tick(self, slot: Slot, at: float) -> Fired:
        delivery = tick_delivery(slot, at)
        self.counts["ticks"] += 1
        if slot.overlap == "skip":
            busy = await asyncio.get_running_loop().run_in_executor(
                self._reads, self._unfinished, slot
            )
            if busy:
                self.counts["ticks_skipped"] += 1
                made = await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._store_skipped, slot, delivery, busy
                )
                return Fired(worker=slot.worker, subject=slot.subject, at=at,
                             outcome="skipped" if made else "duplicate")  # fmt: skip
        event = await self._receive(delivery)
        return Fired(worker=slot.worker, subject=slot.subject, at=at,
                     outcome="sent" if event is not None else "duplicate")  # fmt: skip

    def _unfinished(self, slot: Slot) -> str:
        """The id of a pending or running task of an earlier tick of ``slot``, or ""."""
        for state in UNFINISHED:
            for task in self._store.list_tasks(worker=slot.worker, state=state, limit=1000):
                context = task.context
                if context.get("source") == "cron" and context.get("subject") == slot.subject:
                    return f"{task.id} ({state.value})"
        return ""

    def _store_skipped(self, slot: Slot, delivery: Delivery, busy: str) -> bool:
        event = received(delivery, now=self._clock())
        reason = f"overlap: skip: the task {busy} of an earlier tick has not finished"
        decision = Decision(worker=slot.worker, outcome=Outcome.HELD, rule=slot.rule,
                            reason=reason)  # fmt: skip
        outcome = EventOutcome(event_id=event.id, state=EventState.SKIPPED,
                               decisions=[decision])  # fmt: skip
        [made] = self._store.insert_arrivals([Arrival(event=event, outcome=outcome)])
        if made is not None:
            log.info("worker %s (%s): tick skipped, %s", slot.worker, slot.subject, reason)
        return made is not None
