"""The engine wired by hand, as ``mecha.app.workers`` and ``mecha.app.serve`` wire it, small.

One writer thread and a read pool over the store, the batchers that group commits, the
registry, the dispatcher around a fake ``send`` and ``probe``, write-back with the given
forge writers (none: every write is a dry run), and the pipeline feeding both. Stopped in
serve's order: matching finished, tasks drained, writes drained, commits written, threads
joined.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from mecha.engine.batcher import Batcher
from mecha.engine.dispatcher import Dispatcher, DispatchSettings
from mecha.engine.leases import anonymous_node
from mecha.engine.registry import WorkerRegistry
from mecha.engine.task_send import Send
from mecha.engine.worker_view import Probe
from mecha.engine.write_tries import WriteBackSettings
from mecha.engine.writeback import WriteBack
from mecha.forges.writer import Writer
from mecha.store import Store, TaskUpdate, WritePlan, WriteRecord, WriteUpdate
from mecha.task import Task
from mecha.timeline import TimelineEntry
from tests.unit.engine.fakes import EventSink, Hydrator, TaskSink, healthy

if TYPE_CHECKING:
    from mecha.engine.pipeline import Pipeline

#: retries after 20 ms, 40 ms (at most 50 ms); the store read every 20 ms
FAST = DispatchSettings(
    retry_base=0.02, retry_cap=0.05, poll_interval=0.02, health_interval=3600.0,
    drain_timeout=60.0,
)  # fmt: skip
FAST_WRITES = WriteBackSettings(attempts=3, retry_base=0.02, retry_cap=0.05, poll_interval=0.02)


class Rig:
    """An async context manager: the engine running over ``store``, around ``send``."""

    def __init__(
        self,
        store: Store,
        home: Path,
        *,
        send: Send,
        probe: Probe = healthy,
        settings: DispatchSettings = FAST,
        writes: WriteBackSettings = FAST_WRITES,
        writers: Mapping[str, Writer | None] | None = None,
        previews: Mapping[str, Writer] | None = None,
    ) -> None:
        self.store = store
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="test-writer")
        self.reads = ThreadPoolExecutor(2, thread_name_prefix="test-read")
        self.registry = WorkerRegistry(store=store, environ={}, home=home)
        self._send = send
        self._probe = probe
        self._settings = settings
        self._writes = writes
        self._writers = writers if writers is not None else {"github": None, "gitlab": None}
        self._previews = previews if previews is not None else {}

    async def __aenter__(self) -> Rig:
        store = self.store
        self.updates: Batcher[TaskUpdate, Task | None] = Batcher(
            store.update_tasks, executor=self.writer, name="task-updates"
        )
        self.notes: Batcher[TimelineEntry, None] = Batcher(
            functools.partial(_add_timeline, store), executor=self.writer, name="timeline"
        )
        self.plans: Batcher[WritePlan, list[WriteRecord]] = Batcher(
            store.plan_writes, executor=self.writer, name="write-plans"
        )
        self.write_updates: Batcher[WriteUpdate, WriteRecord | None] = Batcher(
            store.update_writes, executor=self.writer, name="write-updates"
        )
        # one node for both, as serve has: write claims hold leases its heartbeat renews
        node = anonymous_node()
        self.writeback = WriteBack(
            store=store, registry=self.registry, writers=self._writers, previews=self._previews,
            plans=self.plans, updates=self.write_updates, reads=self.reads,
            settings=dataclasses.replace(self._writes, lease=self._settings.lease),
            node=node.id,
        )  # fmt: skip
        self.dispatcher = Dispatcher(
            store=store, registry=self.registry, updates=self.updates, notes=self.notes,
            writer=self.writer, reads=self.reads, send=self._send, probe=self._probe,
            settings=self._settings, writeback=self.writeback, node=node,
        )  # fmt: skip
        self._pipeline: Pipeline | None = None
        for batcher in self._batchers:
            batcher.start()
        await self.dispatcher.start()
        await self.writeback.start()
        return self

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline, handing tasks to the dispatcher and events to write-back (made on
        first use)."""
        if self._pipeline is None:
            from mecha.engine.pipeline import Pipeline

            self._pipeline = Pipeline(
                store=self.store, registry=self.registry, writer=self.writer, reads=self.reads,
                tasks=self.dispatcher, events=self.writeback,
            )  # fmt: skip
            self._pipeline.start()
        return self._pipeline

    @property
    def _batchers(self) -> Sequence[Batcher[object, object]]:
        return [self.updates, self.notes, self.plans, self.write_updates]  # type: ignore[list-item]

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if self._pipeline is not None:
                await self._pipeline.finish_matching()
            # a failed test does not wait for sends it left hanging
            await self.dispatcher.drain(0.0 if error is not None else None, stop_node=False)
            await self.writeback.drain()
            await self.dispatcher.leases.stop()
            if self._pipeline is not None:
                await self._pipeline.close()
            for batcher in self._batchers:
                await batcher.close()
        finally:
            self.writer.shutdown(wait=True)
            self.reads.shutdown(wait=True)


@contextlib.asynccontextmanager
async def pipeline_alone(
    store: Store,
    home: Path,
    *,
    tasks: TaskSink,
    events: EventSink,
    hydrator: Hydrator | None = None,
) -> AsyncIterator[Pipeline]:
    """The pipeline over ``store`` handing what it makes to fake sinks; on leaving, matching
    is finished and every queued commit written."""
    from mecha.engine.pipeline import Pipeline

    writer = ThreadPoolExecutor(1, thread_name_prefix="test-writer")
    reads = ThreadPoolExecutor(2, thread_name_prefix="test-read")
    registry = WorkerRegistry(store=store, environ={}, home=home)
    pipeline = Pipeline(
        store=store, registry=registry, writer=writer, reads=reads, tasks=tasks, events=events
    )
    pipeline.hydrator = hydrator
    pipeline.start()
    try:
        yield pipeline
        await pipeline.finish_matching()
        await pipeline.close()
    finally:
        writer.shutdown(wait=True)
        reads.shutdown(wait=True)


def _add_timeline(store: Store, entries: Sequence[TimelineEntry]) -> list[None]:
    store.add_timeline(entries)
    return [None] * len(entries)
