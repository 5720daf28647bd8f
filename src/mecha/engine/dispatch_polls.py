"""What the store says, as the dispatcher reads it: every poll (workers again, leases
swept, due tasks picked up, cancelled sends stopped, busy states synced), each nudge from
another node, and the worker health checks. A part of ``Dispatcher``, kept apart."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from mecha.engine.dispatch_settings import DispatchSettings
from mecha.engine.lanes import Lanes, Parked
from mecha.engine.leases import NodeLeases
from mecha.engine.polling import poll_forever
from mecha.engine.targets import Target
from mecha.engine.task_send import TaskSender
from mecha.engine.worker_view import WorkerView
from mecha.errors import MechaError
from mecha.store import Store
from mecha.task import Task, TaskState

log = logging.getLogger("mecha.engine.dispatcher")


class StorePolling:
    """The dispatcher's reading of the store and of its workers' health."""

    settings: DispatchSettings
    leases: NodeLeases
    counts: dict[str, int]
    #: checks for cancelled sends done so far (tests wait on it)
    polls: int
    _store: Store
    _reads: Executor
    _view: WorkerView
    _lanes: Lanes
    _parked: Parked
    _known: set[str]
    _aborted: set[str]
    _flights: dict[asyncio.Task[None], Task]
    _sender: TaskSender
    _closing: bool
    _wake: asyncio.Event
    _nudged: asyncio.Event
    _loop: asyncio.AbstractEventLoop | None

    def submit(self, tasks: Sequence[Task]) -> None:
        """Queue pending tasks (the Dispatcher's)."""
        raise NotImplementedError

    def _unpark(self, tasks: Sequence[Task]) -> None:
        """Parked tasks back to their lanes (the Dispatcher's)."""
        raise NotImplementedError

    # --- what the store says ----------------------------------------------------------

    async def _poll_loop(self) -> None:
        await poll_forever(
            self.settings.poll_interval,
            self._poll_once,
            stopping=lambda: self._closing,
            what="dispatcher",
        )

    async def _poll_once(self) -> None:
        await self._refresh_targets()
        self.counts["recovered"] += await self.leases.sweep()
        await self._pick_up()
        await self._abort_cancelled()
        await self._view.sync_busy(self._running(), shared=not self.settings.own_database)

    async def _pick_up(self) -> None:
        """Lanes held back by their worker's limits try again; due tasks we do not hold
        yet are queued."""
        for lane in self._lanes:
            lane.held = False
        self._unpark(self._parked.take_all())  # another node's task of their key may have ended
        due = await self._on(
            self._reads, self._store.due_tasks, now=time.time(), limit=5000,
            skip=frozenset(self._known),
        )  # fmt: skip
        self.submit(due)

    async def _nudge_loop(self) -> None:
        """Each nudge (coalesced while one is handled): pick up due tasks at once."""
        while not self._closing:
            await self._nudged.wait()
            self._nudged.clear()
            try:
                await self._pick_up()
            except MechaError as exc:
                log.error("dispatcher: reading due tasks failed: %s", exc)

    async def _abort_cancelled(self) -> None:
        """Stop sends whose task was cancelled meanwhile (by `mecha task cancel`)."""
        flying = {task.id: flight for flight, task in self._flights.items()}
        if not flying:
            return
        states = await self._on(self._reads, self._store.task_states, task_ids=list(flying))
        for task_id, state in states.items():
            if state is not TaskState.CANCELLED or task_id in self._aborted:
                continue
            if task_id in self._sender.settling:
                continue  # its answer is in: settling it ends by abandoning its writes
            self._aborted.add(task_id)
            flying[task_id].cancel()
        self.polls += 1

    async def _refresh_targets(self) -> None:
        await self._view.refresh()
        for name, target in self._view.targets.items():
            lane = self._lanes.get(name)
            if lane is not None:
                lane.bucket.reshape(target.rate, target.burst)
        self._wake.set()

    def _running(self) -> dict[str, int]:
        return self._lanes.running()

    async def _health_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.settings.health_interval)
            if await self._view.check_all(self._running()):
                self._wake.set()

    def _check_soon(self, target: Target) -> None:
        if self._loop is not None and not self._closing:
            running = self._running().get(target.name, 0)
            self._loop.create_task(self._view.check(target, running))

    # --- helpers ----------------------------------------------------------------------

    async def _on(self, executor: Executor, call: Callable[..., Any], /, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(call, **kwargs))
