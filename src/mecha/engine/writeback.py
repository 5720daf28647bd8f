"""Writing results back to the forge, exactly once: the policy gate and the ledger driver.

When a worker answers, ``settle`` applies the worker's policy (re-read from the registry),
records every decision on the event's timeline, and records each write the verdict allows
in the ledger under a deterministic key, synced to disk, before the task is marked
completed. A task sent twice (after a crash) plans the same keys again and the ledger
keeps the first, so nothing is written twice.

Each write is then tried: marked ``calling`` (synced) before the forge is called and
``done`` (synced) after. A write found ``calling`` after a stop, or tried before, is
``uncertain``: the writer looks on the forge first (our marked comment or review) instead
of writing again. Transient failures (5xx, 429, secondary rate limits) are tried again
after a backoff that honours ``Retry-After``; after ``attempts`` tries the write is
dead-lettered. Any other refusal fails that write with the forge's message. Writes to one
pull request or issue go one at a time, so a sticky comment is never made twice by a race.

With ``dry_run`` in the policy, or no credentials for the event's forge, writes are
recorded as ``dry-run`` with the requests they would have made, and never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

from mecha.duration import format_duration
from mecha.engine.batcher import Batcher
from mecha.engine.pacing import retry_delay
from mecha.engine.polling import poll_forever
from mecha.engine.registry import WorkerRegistry
from mecha.errors import MechaError
from mecha.event import Event
from mecha.forges.writer import WriteFailure, Writer
from mecha.policy import Policy, PolicyKind, Verdict, apply_policy, parse_policy
from mecha.result import TaskResult
from mecha.store import Store, WritePlan, WriteRecord, WriteUpdate
from mecha.task import Task
from mecha.timeline import Step, TimelineEntry
from mecha.worker_kind import WorkerKind
from mecha.writeplan import PLACE_KEYS, plan_writes
from mecha.writes import Write, WriteState

log = logging.getLogger(__name__)

_OPEN = frozenset({WriteState.PLANNED, WriteState.CALLING})
_CALLING = frozenset({WriteState.CALLING})
_NAMES = {"github": "GitHub", "gitlab": "GitLab"}
#: events whose write-back place is kept in memory (older ones are read from the store)
BRIEFS = 4096


@dataclass(frozen=True, kw_only=True)
class Settled:
    """What ``settle`` decided: writes recorded to send, or a plan to record with the task."""

    records: list[WriteRecord] = field(default_factory=list)
    quiet: WritePlan | None = None


@dataclass(frozen=True, kw_only=True)
class WriteBackSettings:
    """How writes are tried (config.yml ``writeback:``)."""

    #: tries of one write before it is dead-lettered
    attempts: int = 5
    retry_base: float = 2.0
    retry_cap: float = 600.0
    #: forge calls in flight at once (writes to one pull request always go one at a time)
    concurrency: int = 4
    #: how often the ledger is read for writes left behind or due again
    poll_interval: float = 1.0


class WriteBack:
    """Runs inside `mecha serve`: ``settle`` results, ``start`` and ``drain``."""

    def __init__(
        self,
        *,
        store: Store,
        registry: WorkerRegistry,
        writers: Mapping[str, Writer | None],
        previews: Mapping[str, Writer],
        plans: Batcher[WritePlan, list[WriteRecord]],
        updates: Batcher[WriteUpdate, WriteRecord | None],
        reads: Executor,
        settings: WriteBackSettings,
    ) -> None:
        self._store = store
        self._registry = registry
        self._writers = writers
        self._previews = previews
        self._plans = plans
        self._updates = updates
        self._reads = reads
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._places: dict[str, tuple[asyncio.Lock, int]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False
        self._warned: set[str] = set()
        #: where recent events write back, by event id (filled as their tasks are made)
        self._briefs: OrderedDict[str, Event] = OrderedDict()
        self._briefs_lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(
            ("written", "failed", "retried", "dead_lettered", "dry_run", "denied"), 0
        )

    # --- life cycle -------------------------------------------------------------------

    def set_writers(
        self, writers: Mapping[str, Writer | None], previews: Mapping[str, Writer]
    ) -> None:
        """Use these forge clients from now on (at start, and when secrets.yml is reloaded)."""
        self._writers = writers
        self._previews = previews

    async def start(self) -> None:
        """Take up writes a stop left open, then poll for due ones."""
        await self._poll_once()
        self._loop_task = asyncio.get_running_loop().create_task(self._poll_loop())

    async def drain(self, timeout: float = 10.0) -> None:
        """Let writes in flight finish (up to ``timeout``); the rest resume at the next start."""
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
        running = list(self._running.values())
        if running:
            _, late = await asyncio.wait(running, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    @property
    def in_flight(self) -> int:
        """Writes being tried now."""
        return len(self._running)

    def stats(self) -> dict[str, int]:
        """Figures for /health and /metrics: writes in flight, and counts since the start."""
        figures = {"writes_in_flight": self.in_flight}
        figures.update({f"writes_{name}": count for name, count in self.counts.items()})
        return figures

    # --- from a result to planned writes ----------------------------------------------

    def remember(self, events: Sequence[Event]) -> None:
        """Keep where these events write back, so a result needs no store read (thread-safe).

        Only the attributes a write's place needs are kept, for the last BRIEFS events.
        """
        with self._briefs_lock:
            for event in events:
                attrs = {key: event.attrs[key] for key in PLACE_KEYS if key in event.attrs}
                self._briefs[event.id] = replace(event, attrs=attrs, raw=b"", headers={})
            while len(self._briefs) > BRIEFS:
                self._briefs.popitem(last=False)

    async def settle(self, task: Task, result: TaskResult) -> Settled:
        """Apply the policy to ``result``; record the writes it allows to be sent (synced).

        Writes to send are recorded here, before the task is completed. A plan with
        nothing to send (a dry run, or only decisions) comes back in ``Settled.quiet``
        to be recorded with the task's completion, in the same unsynced commit. An API
        task (no event) has nowhere to write: its result is only kept and shown.
        """
        if not task.event_id:
            return Settled()
        event = await self._event(task)
        loaded = self._registry.workers.get(task.worker)
        policy = parse_policy(loaded.spec.policy if loaded and loaded.spec else None)
        managed = bool(loaded and loaded.spec and loaded.spec.kind is WorkerKind.MANAGED)
        self._warn_once(task.worker, policy, managed=managed)
        verdict = apply_policy(policy, result)
        planned = plan_writes(verdict, event=event, worker=task.worker)
        forge = planned.writes[0].place.forge if planned.writes else ""
        dry = bool(planned.writes) and (verdict.dry_run or self._writers.get(forge) is None)
        notes = self._notes(task, verdict, planned.skipped)
        details = {}
        if dry:
            why = "the policy says dry_run" if verdict.dry_run else (
                f"no {_NAMES.get(forge, forge)} credentials in secrets.yml"
            )  # fmt: skip
            details = {w.key: f"would {self._preview(w)}" for w in planned.writes}
            notes += [self._entry(task, Step.DRY_RUN, f"{w.action} ({why}): {details[w.key]}")
                      for w in planned.writes]  # fmt: skip
        plan = WritePlan(
            task_id=task.id, event_id=task.event_id, writes=planned.writes, notes=notes,
            state=WriteState.DRY_RUN if dry else WriteState.PLANNED, details=details,
        )  # fmt: skip
        self.counts["denied"] += len(verdict.denied)
        if dry:
            self.counts["dry_run"] += len(planned.writes)
        if dry or not planned.writes:
            return Settled(quiet=plan)
        return Settled(records=await self._plans.add(plan))

    def launch(self, records: Sequence[WriteRecord]) -> None:
        """Start trying the open ones among ``records`` (after their task is completed)."""
        for record in records:
            if record.state in _OPEN and not self._closing:
                self._spawn(record)

    async def abandon(self, records: Sequence[WriteRecord], why: str) -> None:
        """Fail writes planned for a task whose result was dropped (it was cancelled)."""
        for record in records:
            if record.state is WriteState.PLANNED and record.attempts == 0:
                await self._updates.add(
                    WriteUpdate(key=record.key, state=WriteState.FAILED, step=Step.WRITE_FAILED,
                                only_from=frozenset({WriteState.PLANNED}),
                                detail=f"{record.write.action}: not written: {why}")
                )  # fmt: skip

    def _warn_once(self, worker: str, policy: Policy, *, managed: bool) -> None:
        """Say loudly, once per worker and run, that a worker writes back unchecked.

        Upstream's levels: an error for a managed worker (an agent with tools), else a
        warning.
        """
        if policy.kind is PolicyKind.RULES or worker in self._warned:
            return
        self._warned.add(worker)
        if policy.kind is PolicyKind.NONE:
            log.log(
                logging.ERROR if managed else logging.WARNING,
                "worker %s has no policy: every action its results ask for is written back; "
                "add a policy: section to its file to limit it (docs/policy.md)", worker,
            )  # fmt: skip
        else:
            log.error("worker %s has an invalid policy, so every action is denied: %s",
                      worker, "; ".join(str(p) for p in policy.problems if p.fatal))  # fmt: skip

    def _notes(self, task: Task, verdict: Verdict, skipped: Sequence[str]) -> list[TimelineEntry]:
        """The policy's decisions: what it allowed in one entry, each denial in its own."""
        texts = ["allowed: " + "; ".join(verdict.allowed)] if verdict.allowed else []
        texts += [f"denied: {text}" for text in verdict.denied]
        texts += [f"skipped: {text}" for text in skipped]
        return [self._entry(task, Step.POLICY, text) for text in texts]

    def _preview(self, write: Write) -> str:
        previewer = self._previews.get(write.place.forge)
        return previewer.preview(write) if previewer else f"{write.action} on {write.target}"

    @staticmethod
    def _entry(task: Task, step: str, detail: str) -> TimelineEntry:
        return TimelineEntry(
            at=time.time(), step=step, event_id=task.event_id, task_id=task.id,
            worker=task.worker, detail=detail,
        )  # fmt: skip

    async def _event(self, task: Task) -> Event | None:
        if not task.event_id:
            return None
        with self._briefs_lock:
            known = self._briefs.get(task.event_id)
        if known is not None:
            return known
        loop = asyncio.get_running_loop()
        read = functools.partial(self._store.get_event_brief, task.event_id, keys=PLACE_KEYS)
        try:
            return await loop.run_in_executor(self._reads, read)
        except MechaError as exc:
            log.warning("task %s: its event cannot be read (%s); nothing is written", task.id, exc)
            return None

    # --- trying writes ------------------------------------------------------------------

    def _spawn(self, record: WriteRecord) -> None:
        if record.key in self._running:
            return
        job = asyncio.get_running_loop().create_task(self._try(record), name=f"write {record.key}")
        self._running[record.key] = job
        job.add_done_callback(lambda _: self._running.pop(record.key, None))

    async def _try(self, record: WriteRecord) -> None:
        write = record.write
        try:
            async with self._slots, self._place(write.place.name):
                claimed = await self._updates.add(
                    WriteUpdate(key=write.key, state=WriteState.CALLING, only_from=_OPEN,
                                start_attempt=True, detail=record.detail)
                )  # fmt: skip
                if claimed is None:
                    return
                await self._attempt(claimed, uncertain=record.attempts > 0)
        except MechaError as exc:  # the store refused: the write stays as it was stored
            log.error("write %s: %s", write.key, exc)

    async def _attempt(self, record: WriteRecord, *, uncertain: bool) -> None:
        write = record.write
        writer = self._writers.get(write.place.forge)
        try:
            if writer is None:
                raise WriteFailure(f"no {write.place.forge} credentials", transient=False)
            done = await writer.write(write, uncertain=uncertain)
        except WriteFailure as failure:
            await self._failed(record, failure)
        except Exception as exc:  # a bug in a writer must not leave the write calling forever
            log.exception("write %s: unexpected failure", write.key)
            await self._failed(record, WriteFailure(f"internal error: {exc!r}", transient=False))
        else:
            self.counts["written"] += 1
            await self._updates.add(
                WriteUpdate(key=write.key, state=WriteState.DONE, only_from=_CALLING,
                            detail=_said(write.action, done.detail), remote_id=done.remote_id,
                            step=Step.WRITTEN)
            )  # fmt: skip

    async def _failed(self, record: WriteRecord, failure: WriteFailure) -> None:
        write, tries = record.write, self.settings.attempts
        if failure.transient and record.attempts < tries:
            delay = retry_delay(
                record.attempts, base=self.settings.retry_base, cap=self.settings.retry_cap,
                retry_after=failure.retry_after,
            )  # fmt: skip
            detail = (
                f"{write.action}: {failure.message}; attempt {record.attempts + 1} of {tries} "
                f"in {format_duration(delay)}"
            )
            self.counts["retried"] += 1
            update = WriteUpdate(
                key=write.key, state=WriteState.PLANNED, only_from=_CALLING, detail=detail,
                next_at=time.time() + delay, step=Step.WRITE_RETRY,
            )  # fmt: skip
            if await self._updates.add(update) is not None:
                self._later(write.key, delay)
            return
        if failure.transient:
            state, message = WriteState.DEAD, f"dead-letter after {record.attempts} attempts: "
            self.counts["dead_lettered"] += 1
        else:
            state, message = WriteState.FAILED, ""
        self.counts["failed"] += 1
        await self._updates.add(
            WriteUpdate(key=write.key, state=state, only_from=_CALLING, step=Step.WRITE_FAILED,
                        detail=f"{write.action}: {message}{failure.message}")
        )  # fmt: skip

    def _later(self, key: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(delay, lambda: loop.create_task(self._due(key)))

    async def _due(self, key: str) -> None:
        if self._closing or key in self._running:
            return
        loop = asyncio.get_running_loop()
        due = await loop.run_in_executor(
            self._reads, lambda: self._store.due_writes(now=time.time() + 0.001, limit=1000)
        )
        for record in due:
            if record.key == key:
                self._spawn(record)

    @contextlib.asynccontextmanager
    async def _place(self, name: str) -> AsyncIterator[None]:
        lock, users = self._places.get(name, (asyncio.Lock(), 0))
        self._places[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._places[name]
            if users <= 1:
                del self._places[name]
            else:
                self._places[name] = (lock, users - 1)

    # --- what the ledger says -----------------------------------------------------------

    async def _poll_loop(self) -> None:
        await poll_forever(
            self.settings.poll_interval,
            self._poll_once,
            stopping=lambda: self._closing,
            what="write-back",
        )

    async def _poll_once(self) -> None:
        loop = asyncio.get_running_loop()
        skip = set(self._running)
        due = await loop.run_in_executor(
            self._reads, lambda: self._store.due_writes(now=time.time(), skip=skip)
        )
        for record in due:
            self._spawn(record)


def _said(action: str, detail: str) -> str:
    """``comment 12 created`` as it is; other details prefixed with their action."""
    return detail if detail.startswith(action.rstrip("s")) else f"{action}: {detail}"


def write_summary(write: Write) -> str:
    """A few words on a write, for lists: ``comment on octo/hello#7``."""
    return f"{write.action} on {write.target}"
