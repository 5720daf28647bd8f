"""Group commit: many concurrent callers, one store transaction (and one disk sync) per batch.

Each caller ``await``s ``add(item)``; a single loop hands everything queued to ``write``
(a store method taking a list and returning one result per item) on the store's one writer
thread, then resolves every caller with its own result. While one batch is being written
the next one gathers, so the batch size grows with the load and a lone request is not
delayed at all. Nothing is answered before its batch is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class Batcher(Generic[T, R]):
    """Feeds items to ``write`` in batches of at most ``max_batch``, on ``executor``."""

    def __init__(
        self,
        write: Callable[[Sequence[T]], Sequence[R]],
        *,
        executor: Executor,
        max_batch: int = 512,
        name: str = "batch",
    ) -> None:
        self._write = write
        self._executor = executor
        self._max_batch = max_batch
        self._name = name
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: batches written and items in them, for the benchmark and /health
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        """Begin writing (call from inside the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def add(self, item: T) -> R:
        """Queue ``item``; return its result once its batch is committed."""
        if self._closing:
            raise RuntimeError(f"{self._name}: shutting down, not accepting more")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wake.set()
        return await future

    def put(self, item: T) -> None:
        """Queue ``item`` without waiting for its commit (its result and errors are dropped)."""
        if self._closing:
            return
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume)
        self._queue.append((item, future))
        self._wake.set()

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._flush(loop, batch)
            if self._closing:
                return

    async def _flush(
        self, loop: asyncio.AbstractEventLoop, batch: list[tuple[T, asyncio.Future[R]]]
    ) -> None:
        items = [item for item, _ in batch]
        try:
            results = await loop.run_in_executor(self._executor, self._write, items)
        except Exception as exc:  # every caller of this batch gets the error
            log.error("%s: writing %d items failed: %s", self._name, len(items), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.items += len(items)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _consume(future: asyncio.Future[Any]) -> None:
    """Read a fire-and-forget item's outcome so asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()
