"""The background pruner of `mecha serve`: finished work past its retention is removed.

Every ``retention.interval`` (10 minutes; the first pass a minute after the start at
most) a pass removes what ``config.yml``'s ``retention:`` lets go, in batches of at most
``BATCH`` rows and ``BATCH_SECONDS``, each its own transaction on the pruner's own
connection, with a pause after each batch twice as long as it took: the serve's writer,
waiting for the database, sleeps in steps as long as it has waited, so the pause lets it
in before the next batch and it waits for one batch at most. Webhooks keep being stored
while a large backlog is pruned. After a pass that removed anything the write-ahead log
is checkpointed and truncated (``PruneStore.reclaim``).

A failing pass is logged and tried again at the next interval; stopping lets the batch in
progress finish and closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mecha.config.retention import Retention
from mecha.errors import MechaError
from mecha.store.pruning import DiskUsage, PruneCounts, PruneStore

log = logging.getLogger(__name__)

#: rows removed per transaction at most
BATCH = 500
#: a batch ends after this long (a large task's result takes ~4 ms a MB to free)
BATCH_SECONDS = 0.05
#: the shortest pause between two batches of a pass (the writer takes its turn)
PAUSE = 0.01
#: the first pass comes this long after the start at most
FIRST_PASS = 60.0


class Pruner:
    """Runs inside `mecha serve`: ``start`` the passes, ``stop`` them."""

    def __init__(
        self,
        *,
        open_store: Callable[[], PruneStore],
        retention: Retention,
        batch: int = BATCH,
        seconds: float = BATCH_SECONDS,
        pause: float = PAUSE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._open_store = open_store
        self.retention = retention
        self._batch = batch
        self._seconds = seconds
        self._pause = pause
        self._clock = clock
        self._store: PruneStore | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        #: rows removed since the start, and passes made
        self.removed = PruneCounts()
        self.passes = 0

    async def start(self) -> None:
        """Begin the passes (none when ``retention`` keeps everything for ever)."""
        if not self.retention.active:
            log.info("retention is off in config.yml: nothing is pruned")
            return
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        """Let the batch in progress finish; close the pruner's connection."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        if self._store is not None:
            store, self._store = self._store, None
            await asyncio.to_thread(store.close)

    async def run_pass(self) -> PruneCounts:
        """Remove everything due now, batch by batch; what was removed."""
        if self._store is None:
            self._store = await asyncio.to_thread(self._open_store)
        store = self._store
        before = self.retention.cutoffs(self._clock())
        started = time.monotonic()
        removed = PruneCounts()
        while not self._stopping.is_set():
            began = time.monotonic()
            batch = await asyncio.to_thread(
                store.prune, before, limit=self._batch, seconds=self._seconds
            )
            removed += batch
            if not batch.total:
                break
            await asyncio.sleep(max(self._pause, 2 * (time.monotonic() - began)))
        self.removed += removed
        self.passes += 1
        if removed.total:
            usage = await asyncio.to_thread(store.reclaim)
            took = time.monotonic() - started
            log.info("pruned %s in %.1f s; %s", describe(removed), took, space(usage))
        return removed

    async def _loop(self) -> None:
        delay = min(self.retention.interval, FIRST_PASS)
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            except TimeoutError:
                pass
            try:
                await self.run_pass()
            except MechaError as exc:
                log.warning("pruning old rows failed; tried again in %ss: %s",
                            f"{self.retention.interval:g}", exc)  # fmt: skip
            delay = self.retention.interval


def describe(counts: PruneCounts) -> str:
    """``3 events, 3 tasks, 12 timeline entries, 1 write`` (kinds with none left out)."""
    parts = [
        _count(counts.events, "event"), _count(counts.tasks, "task"),
        _count(counts.timeline, "timeline entry", "timeline entries"),
        _count(counts.writes, "write"),
    ]  # fmt: skip
    return ", ".join(part for part in parts if part) or "nothing"


def space(usage: DiskUsage) -> str:
    """``database 95.0 MB (60.0 MB of it free for new rows), write-ahead log 0 B``."""
    free = f" ({size_text(usage.free)} of it free for new rows)" if usage.free else ""
    return f"database {size_text(usage.database)}{free}, write-ahead log {size_text(usage.wal)}"


def size_text(size: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 KB``, ``23.6 MB``, ``1.2 GB`` (powers of 1000)."""
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            return f"{size} B" if size < 1000 else f"{value:.1f} {unit}"
    return f"{size} B"  # pragma: no cover (the loop returns)


def _count(number: int, one: str, many: str = "") -> str:
    if not number:
        return ""
    return f"{number:,} {one if number == 1 else many or one + 's'}"
