"""Running tasks' progress, from the adapters' token counts to the store.

Adapters count the tokens their model streams per task (``mecha.runtimes.token_counts``);
``ProgressWriter`` looks at the counts every quarter second and writes those that changed,
each task's at most once a second (its first count at once), together in one unsynced
transaction on the store's writer thread, so `mecha task ls`, `task show` and the API in
any process show them. Time against the timeout needs no writes: the claim records when
the attempt started and its time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor

from mecha.engine.batcher import Batcher
from mecha.runtimes.token_counts import COUNTS, TokenCounts
from mecha.store import Store

log = logging.getLogger(__name__)

#: a task's count is written at most this often
INTERVAL = 1.0
#: how often the counts are looked at
TICK = 0.25


class ProgressWriter:
    """Started and closed by `mecha serve` with its other writers."""

    def __init__(
        self,
        store: Store,
        *,
        writer: Executor,
        counts: TokenCounts = COUNTS,
        interval: float = INTERVAL,
        tick: float = TICK,
    ) -> None:
        self._counts = counts
        self._interval = interval
        self._tick = tick
        #: when each task's count was last written (monotonic seconds)
        self._written: dict[str, float] = {}
        self._batcher: Batcher[tuple[str, int], None] = Batcher(
            functools.partial(_set_tokens, store), executor=writer, name="task-progress"
        )
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin (inside the running event loop)."""
        self._batcher.start()
        self._loop = asyncio.get_running_loop().create_task(self._run(), name="task-progress")

    async def close(self) -> None:
        """Stop taking counts; write what is queued."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await self._batcher.close()

    async def flush(self, now: float | None = None) -> None:
        """Write the changed counts not written in the last ``interval``, together."""
        now = time.monotonic() if now is None else now
        for task_id in [t for t in self._written if t not in self._counts]:
            del self._written[task_id]  # finished
        recent = {t for t, at in self._written.items() if now - at < self._interval}
        changed = self._counts.take_changed(held=recent)
        for task_id, _ in changed:
            self._written[task_id] = now
        await asyncio.gather(*(self._batcher.add(item) for item in changed))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            try:
                await self.flush()
            except Exception as exc:  # the batcher logged it; progress is best effort
                log.debug("task progress not written: %s", exc)


def _set_tokens(store: Store, counts: Sequence[tuple[str, int]]) -> list[None]:
    store.set_task_tokens(counts)
    return [None] * len(counts)
