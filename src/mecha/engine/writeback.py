"""Writing results back to the forge, exactly once: the policy gate and the ledger driver.

When a worker answers, ``settle`` applies the worker's policy (re-read from the registry),
records every decision on the event's timeline, and records each write the verdict allows
in the ledger under a deterministic key, synced to disk, before the task is marked
completed. A task sent twice (after a crash) plans the same keys again and the ledger
keeps the first, so nothing is written twice.

Each write is then tried (``write_tries``): marked ``calling`` (synced) before the forge
is called and ``done`` (synced) after. A write found ``calling`` after a stop, or tried before, is
``uncertain``: the writer looks on the forge first (our marked comment or review) instead
of writing again. Transient failures (5xx, 429, secondary rate limits) are tried again
after a backoff that honours ``Retry-After``; after ``attempts`` tries the write is
dead-lettered. Any other refusal fails that write with the forge's message. Writes to one
pull request or issue go one at a time, so a sticky comment is never made twice by a race.

With ``dry_run`` in the policy, or no credentials for the event's forge, writes are
recorded as ``dry-run`` with the requests they would have made, and never sent.

A comment over the worker's ``policy.comment.max_per_hour`` on its thread is dropped as it
is planned (``mecha.engine.comment_cap``). When a command's task starts, ``acknowledge``
plans the 👀 on its comment (``mecha.policy.reactions``) in the same ledger.

A write is recorded as it will be sent (``as_written``): a comment longer than its forge
takes is cut, with the forge client's note, before it is recorded, so the ledger never
keeps more of a worker's answer than reaches the forge (a 5 MB comment is recorded as the
65,536 characters GitHub is sent).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

from mecha.engine import tracing
from mecha.engine.batcher import Batcher
from mecha.engine.comment_cap import CommentCap
from mecha.engine.registry import WorkerRegistry
from mecha.engine.write_tries import WriteBackSettings, WriteTries
from mecha.errors import MechaError
from mecha.event import Event
from mecha.forges.bodies import comment_body
from mecha.forges.writer import Writer
from mecha.policy.gate import Policy, PolicyKind, Verdict, apply_policy, parse_policy
from mecha.policy.plan import PLACE_KEYS, PlannedWrites, plan_writes
from mecha.policy.reactions import REACTION_KEYS, reaction_write
from mecha.policy.writes import Write, WriteState, marked_body
from mecha.result import TaskResult
from mecha.store import Store, WritePlan, WriteRecord, WriteUpdate
from mecha.task import Task, TaskState
from mecha.timeline import Step, TimelineEntry
from mecha.worker.kind import WorkerKind

log = logging.getLogger(__name__)

_OPEN = frozenset({WriteState.PLANNED, WriteState.CALLING})
_CALLING = frozenset({WriteState.CALLING})
_NAMES = {"github": "GitHub", "gitlab": "GitLab"}
#: events whose write-back place is kept in memory (older ones are read from the store)
BRIEFS = 4096
_BRIEF_KEYS = (*PLACE_KEYS, *REACTION_KEYS)


@dataclass(frozen=True, kw_only=True)
class Settled:
    """What ``settle`` decided: writes recorded to send, or a plan to record with the task."""

    records: list[WriteRecord] = field(default_factory=list)
    quiet: WritePlan | None = None


class WriteBack:
    """Runs inside `mecha serve`: ``settle`` results, ``launch`` their writes, ``drain``."""

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
        node: str = "",
    ) -> None:
        self._store = store
        self._registry = registry
        self._writers = writers
        self._previews = previews
        self._plans = plans
        self._updates = updates
        self._reads = reads
        self.settings = settings
        self._warned: set[str] = set()
        #: where recent events write back, by event id (filled as their tasks are made)
        self._briefs: OrderedDict[str, Event] = OrderedDict()
        self._briefs_lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(
            ("written", "failed", "retried", "dead_lettered", "dry_run", "denied", "capped"), 0
        )
        #: policy.comment.max_per_hour, counted in the ledger
        self.cap = CommentCap(store=store, reads=reads)
        #: reactions being planned (``acknowledge``)
        self._acks: set[asyncio.Task[None]] = set()
        self._tries = WriteTries(
            store=store, updates=updates, reads=reads, settings=settings, counts=self.counts,
            node=node,
        )  # fmt: skip
        self._tries.writers = writers

    # --- life cycle -------------------------------------------------------------------

    def set_writers(
        self, writers: Mapping[str, Writer | None], previews: Mapping[str, Writer]
    ) -> None:
        """Use these forge clients from now on (at start, and when secrets.yml is reloaded)."""
        self._writers = writers
        self._previews = previews
        self._tries.writers = writers

    async def start(self) -> None:
        """Take up writes a stop left open, then poll for due ones."""
        await self._tries.start()

    async def drain(self, timeout: float = 10.0) -> None:
        """Let writes in flight finish (up to ``timeout``); the rest resume at the next start."""
        if self._acks:  # reactions being planned: recorded before the ledger closes
            await asyncio.wait(list(self._acks), timeout=timeout)
        await self._tries.drain(timeout)

    @property
    def in_flight(self) -> int:
        """Writes being tried now."""
        return self._tries.in_flight

    def stats(self) -> dict[str, int]:
        """Figures for /health and /metrics: writes in flight, and counts since the start."""
        figures = {"writes_in_flight": self.in_flight}
        figures.update({f"writes_{name}": count for name, count in self.counts.items()})
        return figures

    # --- from a result to planned writes ----------------------------------------------

    def remember(self, events: Sequence[Event]) -> None:
        """Keep where these events write back, so a result needs no store read (thread-safe).

        Only the attributes a write's place (and a reaction) needs are kept, for the last
        BRIEFS events.
        """
        with self._briefs_lock:
            for event in events:
                attrs = {key: event.attrs[key] for key in _BRIEF_KEYS if key in event.attrs}
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
        with tracing.tracer.span("mecha.policy") as span:
            verdict = apply_policy(policy, result, worker=task.worker)
            planned = plan_writes(verdict, event=event, worker=task.worker)
            planned = replace(planned, writes=tuple(as_written(w) for w in planned.writes))
            span.set("mecha.policy.writes", len(planned.writes))
            span.set("mecha.policy.denied", len(verdict.denied))
            span.set("mecha.policy.dry_run", verdict.dry_run)
        forge = planned.writes[0].place.forge if planned.writes else ""
        dry = bool(planned.writes) and (verdict.dry_run or self._writers.get(forge) is None)
        if dry:  # nothing reaches the forge: no cap to count against
            return await self._record(task, verdict, planned, dry=True)
        async with self.cap.turn(planned.writes):  # counted and planned in one turn
            planned, capped = await self.cap.check(planned, policy.comment.max_per_hour)
            self.counts["capped"] += capped
            return await self._record(task, verdict, planned, dry=False)

    async def _record(
        self, task: Task, verdict: Verdict, planned: PlannedWrites, *, dry: bool
    ) -> Settled:
        """Record what ``settle`` planned: writes to send now, or a quiet plan (dry run)."""
        forge = planned.writes[0].place.forge if planned.writes else ""
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

    def acknowledge(self, task: Task) -> None:
        """👀 on the comment that carried ``task``'s command, now that it starts, if the
        worker's policy says ``reactions: {allow: true}`` (from the loop; returns at once).

        Planned in the ledger under the key of the event, the worker and the comment, so a
        task claimed again (a retry, a take-over, a restart) reacts once. A reaction that
        fails is a failed write on the timeline, never a failed task.
        """
        if not task.event_id or not task.context.get("command") or self._tries.closing:
            return
        job = asyncio.get_running_loop().create_task(self._acknowledge(task))
        self._acks.add(job)
        job.add_done_callback(self._acks.discard)

    async def _acknowledge(self, task: Task) -> None:
        try:
            loaded = self._registry.workers.get(task.worker)
            policy = parse_policy(loaded.spec.policy if loaded and loaded.spec else None)
            event = await self._event(task) if policy.reactions else None
            if event is None or policy.kind is not PolicyKind.RULES:
                return
            write = reaction_write(event, worker=task.worker)
            if isinstance(write, str):
                note = self._entry(task, Step.POLICY, f"skipped: {write}")
                await self._plans.add(WritePlan(task_id=task.id, event_id=task.event_id,
                                                writes=(), notes=[note]))  # fmt: skip
                return
            dry = policy.dry_run or self._writers.get(write.place.forge) is None
            details = {write.key: f"would {self._preview(write)}"} if dry else {}
            notes = [self._entry(task, Step.DRY_RUN, f"reaction: {details[write.key]}")
                     for _ in details]  # fmt: skip
            plan = WritePlan(
                task_id=task.id, event_id=task.event_id, writes=(write,), notes=notes,
                state=WriteState.DRY_RUN if dry else WriteState.PLANNED, details=details,
            )  # fmt: skip
            self.launch(await self._plans.add(plan))
        except Exception:  # a reaction never fails the task, nor takes the loop down
            log.exception("task %s: the reaction to its command could not be planned", task.id)

    def launch(self, records: Sequence[WriteRecord]) -> None:
        """Start trying the open ones among ``records`` (after their task is completed)."""
        for record in records:
            if record.state in _OPEN and not self._tries.closing:
                self._tries.spawn(record)

    async def abandon(self, records: Sequence[WriteRecord], why: str) -> None:
        """Fail writes planned for a task whose result was dropped because it was cancelled.

        A task another node took over (this node's lease ended) keeps them: the node that
        finishes it plans the same keys, and the ledger writes each once.
        """
        task_ids = list({record.task_id for record in records})
        loop = asyncio.get_running_loop()
        states = await loop.run_in_executor(
            self._reads, functools.partial(self._store.task_states, task_ids)
        )
        records = [r for r in records if states.get(r.task_id) is TaskState.CANCELLED]
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
        read = functools.partial(self._store.get_event_brief, task.event_id, keys=_BRIEF_KEYS)
        try:
            return await loop.run_in_executor(self._reads, read)
        except MechaError as exc:
            log.warning("task %s: its event cannot be read (%s); nothing is written", task.id, exc)
            return None


def as_written(write: Write) -> Write:
    """``write`` with a comment's body as its forge client will send it (pure).

    The client cuts a body its forge would refuse (GitHub: 65,536 characters with the
    hidden markers; GitLab: 1,000,000) and says so at the end; done here, the ledger
    records that text, and the client, finding it fits, sends it unchanged.
    """
    if write.action != "comment":
        return write
    sent = comment_body(write)
    if sent is None:
        return write
    markers = marked_body(write, "")
    if sent == marked_body(write, write.body) or not sent.endswith(markers):
        return write
    return replace(write, body=sent[: len(sent) - len(markers)])
