"""Trying writes against the forges: claims, calls, retries with backoff, dead letters.

Each write is marked ``calling`` (synced) before its forge is called and ``done``
(synced) after. The claim holds a lease this node's heartbeat renews: another node takes
a write up only once its caller stopped renewing (died). A write tried before, or found
``calling`` after a stop (or a take-over), is
``uncertain``: the writer looks on the forge first. Transient failures go back to
``planned`` with the time of the next try (a longer ``Retry-After`` wins, but never past
``retry_cap``); after ``attempts`` tries the write is dead-lettered; other refusals fail
it. Writes to one pull request or issue go one at a time; ``concurrency`` bounds forge calls in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass

from mecha.duration import format_duration
from mecha.engine import log_context, tracing
from mecha.engine.batcher import Batcher
from mecha.engine.pacing import over_cap, retry_delay
from mecha.engine.polling import poll_forever
from mecha.errors import MechaError
from mecha.forges.writer import WriteFailure, Writer
from mecha.policy.writes import WriteState
from mecha.store import Store, WriteRecord, WriteUpdate
from mecha.timeline import Step

log = logging.getLogger(__name__)

_OPEN = frozenset({WriteState.PLANNED, WriteState.CALLING})
_CALLING = frozenset({WriteState.CALLING})


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
    #: seconds a claim of a write holds without this node's heartbeat (the dispatch lease)
    lease: float = 30.0


class WriteTries:
    """The writes being tried now, and the loop that finds those due."""

    def __init__(
        self,
        *,
        store: Store,
        updates: Batcher[WriteUpdate, WriteRecord | None],
        reads: Executor,
        settings: WriteBackSettings,
        counts: dict[str, int],
        node: str = "",
    ) -> None:
        self._store = store
        #: the node a claim is recorded for (its heartbeat renews the lease)
        self._node = node
        self._updates = updates
        self._reads = reads
        self.settings = settings
        self.counts = counts
        self.writers: Mapping[str, Writer | None] = {}
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._places: dict[str, tuple[asyncio.Lock, int]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Take up writes a stop left open, then poll for due ones."""
        await self._poll_once()
        self._loop_task = asyncio.get_running_loop().create_task(self._poll_loop())

    async def drain(self, timeout: float) -> None:
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

    @property
    def closing(self) -> bool:
        """True once ``drain`` began."""
        return self._closing

    def spawn(self, record: WriteRecord) -> None:
        """Try ``record`` now (unless it is being tried)."""
        if record.key in self._running:
            return
        job = asyncio.get_running_loop().create_task(self._try(record), name=f"write {record.key}")
        self._running[record.key] = job
        job.add_done_callback(lambda _: self._running.pop(record.key, None))

    async def _try(self, record: WriteRecord) -> None:
        write = record.write
        log_context.for_task(record.task_id, write.worker, record.event_id)  # its own task
        try:
            async with self._slots, self._place(write.place.name):
                claimed = await self._updates.add(
                    WriteUpdate(key=write.key, state=WriteState.CALLING, only_from=_OPEN,
                                start_attempt=True, detail=record.detail, node=self._node,
                                lease=self.settings.lease)
                )  # fmt: skip
                if claimed is None:
                    return
                await self._attempt(claimed, uncertain=record.attempts > 0)
        except MechaError as exc:  # the store refused: the write stays as it was stored
            log.error("write %s: %s", write.key, exc)

    async def _attempt(self, record: WriteRecord, *, uncertain: bool) -> None:
        write = record.write
        writer = self.writers.get(write.place.forge)
        try:
            with tracing.tracer.span("mecha.write") as span:
                span.set("mecha.write.key", write.key)
                span.set("mecha.write.action", write.action)
                span.set("mecha.task.id", record.task_id)
                span.set("mecha.write.attempt", record.attempts)
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
                f"{over_cap(failure.retry_after, self.settings.retry_cap)}"
            )
            self.counts["retried"] += 1
            update = WriteUpdate(
                key=write.key, state=WriteState.PLANNED, only_from=_CALLING, detail=detail,
                next_at=time.time() + delay, step=Step.WRITE_RETRY,
            )  # fmt: skip
            if await self._updates.add(update) is not None:
                self._later(write.key, delay)
            return
        note = ""
        if failure.transient:
            state, message = WriteState.DEAD, f"dead-letter after {record.attempts} attempts: "
            note = over_cap(failure.retry_after, self.settings.retry_cap)
            self.counts["dead_lettered"] += 1
        else:
            state, message = WriteState.FAILED, ""
        self.counts["failed"] += 1
        await self._updates.add(
            WriteUpdate(key=write.key, state=state, only_from=_CALLING, step=Step.WRITE_FAILED,
                        detail=f"{write.action}: {message}{failure.message}{note}")
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
                self.spawn(record)

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
            self.spawn(record)


def _said(action: str, detail: str) -> str:
    """``comment 12 created`` as it is; other details prefixed with their action."""
    return detail if detail.startswith(action.rstrip("s")) else f"{action}: {detail}"
