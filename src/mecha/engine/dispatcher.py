"""Sending tasks to workers: per-worker queues, limits, retries, recovery and draining.

Tasks live in the store; the dispatcher's memory only says which of them it is handling.
Each worker has a lane: a FIFO queue, its concurrency (default 1), a token bucket (default
2/s, burst 5). A task for a busy worker waits in its lane (upstream failed it at once). The
scheduler serves lanes round-robin, one task per lane per pass, under a global limit
(default 16), so one slow worker cannot starve the others.

A send is claimed first (pending → running, guarded, so a `mecha task cancel` wins), then
sent; the answer or failure is recorded in a grouped commit with its timeline step. A
transient failure goes back to pending with a backoff time and is sent again when it comes
(the worker stays usable for it); past ``max_retries`` it is dead-lettered as failed with
the last error. Tasks of a worker that is offline or in error wait in its lane.

Every second the poll loop re-reads workers (state, endpoint, definition) and picks up due
tasks it does not hold: retries made by `mecha task retry` in another process, tasks left
behind by a crash, API tasks. At start, tasks found running are put back to pending and
busy workers back to online (``Store.recover``), then everything due is queued again:
delivery to workers is at least once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any

from mecha.duration import format_duration
from mecha.engine.batcher import Batcher
from mecha.engine.histogram import Histogram
from mecha.engine.pacing import RETRY_BASE, RETRY_CAP, TokenBucket
from mecha.engine.polling import poll_forever
from mecha.engine.registry import WorkerRegistry
from mecha.engine.targets import Target
from mecha.engine.task_outcome import after_failure, completed
from mecha.engine.worker_view import Probe, WorkerView
from mecha.engine.writeback import Settled, WriteBack
from mecha.errors import MechaError
from mecha.result import TaskResult
from mecha.runtimes.endpoint import WorkerFailure
from mecha.store import Store, TaskUpdate
from mecha.task import Task, TaskState
from mecha.timeline import Step, TimelineEntry

log = logging.getLogger(__name__)

#: sends one task to the worker it names; raises WorkerFailure
Send = Callable[[Target, Task], Awaitable[TaskResult]]

_PENDING = frozenset({TaskState.PENDING})
_RUNNING = frozenset({TaskState.RUNNING})


@dataclass(frozen=True, kw_only=True)
class DispatchSettings:
    """The dispatcher's knobs (config.yml ``dispatch:``; tests make them short)."""

    concurrency: int = 16
    retry_base: float = RETRY_BASE
    retry_cap: float = RETRY_CAP
    poll_interval: float = 1.0
    health_interval: float = 15.0
    drain_timeout: float = 600.0


@dataclass(eq=False)
class Lane:
    """One worker's queue and what it has in flight."""

    name: str
    queue: deque[Task] = field(default_factory=deque)
    running: int = 0
    bucket: TokenBucket = field(default_factory=lambda: TokenBucket(2.0, 5))
    timer: asyncio.TimerHandle | None = None
    #: the worker is unknown and the workers are being read again
    checking: bool = False
    #: queued since the lane last said why it waits (each task is told once)
    unnoted: list[Task] = field(default_factory=list)
    #: told when nothing is in flight any more (``Dispatcher.settled``)
    idle: list[asyncio.Future[None]] = field(default_factory=list)


class Dispatcher:
    """Runs inside `mecha serve`: ``start``, ``submit`` tasks, ``drain`` at the end."""

    def __init__(
        self,
        *,
        store: Store,
        registry: WorkerRegistry,
        updates: Batcher[TaskUpdate, Task | None],
        notes: Batcher[TimelineEntry, None],
        writer: Executor,
        reads: Executor,
        send: Send,
        probe: Probe,
        settings: DispatchSettings,
        keys: Mapping[str, str] | None = None,
        writeback: WriteBack | None = None,
    ) -> None:
        self._store = store
        self._writeback = writeback
        self._updates = updates
        self._notes = notes
        self._writer = writer
        self._reads = reads
        self._send = send
        self.settings = settings
        self._view = WorkerView(
            store=store, registry=registry, writer=writer, reads=reads, probe=probe,
            keys=keys if keys is not None else {},
        )  # fmt: skip
        self._lanes: dict[str, Lane] = {}
        self._known: set[str] = set()
        self._noted: set[str] = set()
        #: tasks whose send is being abandoned because they were cancelled
        self._aborted: set[str] = set()
        self._flights: dict[asyncio.Task[None], Task] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._next_lane = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counts: dict[str, int] = dict.fromkeys(
            ("sent", "completed", "failed", "retried", "dead_lettered", "recovered"), 0
        )
        #: ms from a task being stored (or due again) to its send starting
        self.latency = Histogram()

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Recover what a stop left behind, load due tasks, start the loops."""
        self._loop = asyncio.get_running_loop()
        requeued, reset = await self._on(self._writer, self._store.recover)
        self.counts["recovered"] = requeued
        if requeued or reset:
            log.info("recovered %d in-flight tasks and %d busy workers", requeued, reset)
        await self._poll_once()
        for name, body in (
            ("dispatch", self._schedule_loop),
            ("dispatch-poll", self._poll_loop),
            ("dispatch-health", self._health_loop),
        ):
            self._loops.append(self._loop.create_task(body(), name=name))

    async def drain(self, timeout: float | None = None) -> int:
        """Stop sending; wait for tasks in flight up to ``timeout``; requeue the rest.

        Returns how many were requeued for the next start.
        """
        self._closing = True
        for loop_task in self._loops:
            loop_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        limit = self.settings.drain_timeout if timeout is None else timeout
        flights = list(self._flights)
        if flights:
            log.info(
                "waiting up to %s for %d tasks in flight", format_duration(limit), len(flights)
            )
            _, late = await asyncio.wait(flights, timeout=limit)
        else:
            late = set()
        left = [self._flights[f] for f in late if f in self._flights]
        for flight in late:
            flight.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if left:
            detail = "mecha serve stopped before the worker answered; sent again at the next start"
            await asyncio.gather(
                *(self._update(t.id, TaskState.PENDING, _RUNNING, Step.REQUEUED, detail)
                  for t in left),
                return_exceptions=True,
            )  # fmt: skip
        await self._view.sync_busy({})
        return len(left)

    # --- intake -----------------------------------------------------------------------

    def submit(self, tasks: Sequence[Task]) -> None:
        """Queue pending tasks (from any coroutine on the server's loop); returns at once."""
        for task in tasks:
            if task.state is TaskState.PENDING and task.id not in self._known:
                self._known.add(task.id)
                lane = self._lane(task.worker)
                lane.queue.append(task)
                lane.unnoted.append(task)
        self._wake.set()

    def submit_threadsafe(self, tasks: Sequence[Task]) -> None:
        """``submit`` from another thread (the store writer, after a commit)."""
        if tasks and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.submit, list(tasks))

    def queued(self) -> int:
        """Tasks waiting in lanes (not in flight, not waiting for a retry time)."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    def in_flight(self) -> int:
        """Tasks being sent right now."""
        return len(self._flights)

    # --- holding a worker while serve restarts it -------------------------------------

    def hold(self, name: str, why: str) -> int:
        """Send none of worker ``name``'s tasks until ``release``; they wait saying ``why``.

        Returns the hold, for ``release``.
        """
        return self._view.hold(name, why)

    async def release(self, name: str, hold: int) -> None:
        """Read the workers again (new endpoints, keys) and end ``hold`` of worker ``name``."""
        await self._view.refresh(release={name: hold})
        self._wake.set()

    async def settled(self, name: str) -> None:
        """Return once none of worker ``name``'s tasks is in flight."""
        lane = self._lanes.get(name)
        while lane is not None and lane.running:
            waiter = asyncio.get_running_loop().create_future()
            lane.idle.append(waiter)
            await waiter

    def stats(self) -> dict[str, int]:
        """Figures for /health: tasks queued and in flight, and counts since the start."""
        figures = {"tasks_queued": self.queued(), "tasks_in_flight": self.in_flight()}
        figures.update({f"tasks_{name}": count for name, count in self.counts.items()})
        return figures

    # --- scheduling -------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            self._launch_ready()

    def _launch_ready(self) -> None:
        """Start every task the limits allow; the least busy worker goes first.

        Ties go round-robin, so a worker with many slow tasks cannot take every free slot
        while another worker's tasks wait.
        """
        if not self._view.loaded or self._closing:
            return
        limit = self.settings.concurrency
        while len(self._flights) < limit:
            names = [name for name, lane in self._lanes.items() if lane.queue]
            if not names:
                return
            count = len(names)
            start = self._next_lane % count
            order = sorted(
                range(count), key=lambda s: (self._lanes[names[(start + s) % count]].running, s)
            )
            for step in order:
                lane = self._lanes[names[(start + step) % count]]
                if self._launch_one(lane):
                    self._next_lane = (start + step + 1) % count
                    break
            else:
                return

    def _launch_one(self, lane: Lane) -> bool:
        target = self._view.targets.get(lane.name)
        if target is None:
            self._drop_unregistered(lane)
            return False
        if target.waiting:
            self._note_waiting(lane, target.waiting)
            return False
        lane.unnoted.clear()
        if lane.running >= target.concurrency:
            return False
        wait = lane.bucket.take(time.monotonic())
        if wait > 0:
            self._wake_later(lane, wait)
            return False
        task = lane.queue.popleft()
        lane.running += 1
        assert self._loop is not None
        flight = self._loop.create_task(self._run(lane, target, task), name=f"task-{task.id}")
        self._flights[flight] = task
        flight.add_done_callback(self._flights.pop)
        return True

    def _wake_later(self, lane: Lane, delay: float) -> None:
        if lane.timer is None and self._loop is not None:

            def fire() -> None:
                lane.timer = None
                self._wake.set()

            lane.timer = self._loop.call_later(delay, fire)

    def _lane(self, name: str) -> Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = Lane(name)
            target = self._view.targets.get(name)
            if target is not None:
                lane.bucket.reshape(target.rate, target.burst)
        return lane

    # --- one task ---------------------------------------------------------------------

    async def _run(self, lane: Lane, target: Target, task: Task) -> None:
        keep = False
        where = f"{target.endpoint or 'a fresh container'} (definition {target.definition})"
        try:
            claimed = await self._updates.add(
                TaskUpdate(
                    task_id=task.id, state=TaskState.RUNNING, only_from=_PENDING,
                    start_attempt=True, step=Step.DISPATCHED,
                    detail=f"attempt {task.attempts + 1} to {where}",
                )
            )  # fmt: skip
            if claimed is None:  # cancelled, or handled elsewhere meanwhile
                return
            self.counts["sent"] += 1
            ready = max(claimed.created_at, claimed.next_retry_at)
            self.latency.observe(max(0.0, (claimed.dispatched_at - ready) * 1000))
            try:
                result = await self._send(target, claimed)
            except WorkerFailure as failure:
                keep = await self._failed(target, claimed, failure)
            else:
                await self._completed(claimed, result)
        except asyncio.CancelledError:
            if task.id not in self._aborted:
                raise  # the drain at shutdown: it requeues the task
            log.info("task %s was cancelled while it ran; its send is abandoned", task.id)
        except MechaError as exc:  # the store refused: the task stays as it was stored
            log.error("task %s: %s", task.id, exc)
        except Exception:
            log.exception(
                "task %s: unexpected failure; it is sent again at the next start", task.id
            )
        finally:
            lane.running -= 1
            if lane.idle and not lane.running:
                _tell(lane.idle)
            self._aborted.discard(task.id)
            if not keep:
                self._known.discard(task.id)
                self._noted.discard(task.id)
            self._wake.set()

    async def _completed(self, task: Task, result: TaskResult) -> None:
        # the writes are recorded (synced) before the task is completed: a crash between
        # the two sends the task again, and its writes are planned under the same keys
        settled = await self._writeback.settle(task, result) if self._writeback else Settled()
        update = replace(completed(task, result), plan=settled.quiet)
        writes = settled.records
        if await self._updates.add(update) is None:
            log.info("task %s was cancelled while it ran; its result is dropped", task.id)
            if self._writeback and writes:
                await self._writeback.abandon(writes, "the task was cancelled while it ran")
        else:
            self.counts["completed"] += 1
            if self._writeback and writes:
                self._writeback.launch(writes)

    async def _failed(self, target: Target, task: Task, failure: WorkerFailure) -> bool:
        """Record a failed send; True if the task waits for a retry (still ours)."""
        if failure.status == 0 and failure.transient:
            self._check_soon(target)
        then = after_failure(
            task, failure, max_retries=target.max_retries, now=time.time(),
            retry_base=self.settings.retry_base, retry_cap=self.settings.retry_cap,
        )  # fmt: skip
        stored = await self._updates.add(then.update)
        if then.retry_in is None:
            log.warning("task %s for %s failed: %s", task.id, target.name, then.update.error)
            self.counts["failed"] += 1
            self.counts["dead_lettered"] += then.dead_letter
            return False
        if stored is None:  # cancelled meanwhile
            return False
        self.counts["retried"] += 1
        log.info("task %s for %s: %s", task.id, target.name, then.update.detail)
        assert self._loop is not None
        self._loop.call_later(then.retry_in, self._requeue, stored)
        return True

    def _requeue(self, task: Task) -> None:
        if self._closing or task.id not in self._known:
            return
        self._lane(task.worker).queue.append(task)
        self._wake.set()

    def _drop_unregistered(self, lane: Lane) -> None:
        """A lane whose worker is not known: read the workers again, then fail what is left.

        The worker may have been added a moment ago (the matcher saw it first).
        """
        if lane.checking or self._loop is None:
            return
        lane.checking = True
        self._loop.create_task(self._recheck(lane))

    async def _recheck(self, lane: Lane) -> None:
        try:
            await self._refresh_targets()
        except MechaError as exc:
            log.error("dispatcher: reading workers failed: %s", exc)
            return
        finally:
            lane.checking = False
        if lane.name in self._view.targets:
            self._wake.set()
            return
        tasks = list(lane.queue)
        lane.queue.clear()
        why = f'worker "{lane.name}" is not registered (was it removed?)'
        for task in tasks:
            self._known.discard(task.id)
        await asyncio.gather(
            *(self._update(t.id, TaskState.FAILED, _PENDING, Step.FAILED, why, error=why)
              for t in tasks),
            return_exceptions=True,
        )  # fmt: skip

    def _note_waiting(self, lane: Lane, why: str) -> None:
        """Say once per task, on its timeline, why it waits (batched with task updates)."""
        if not lane.unnoted or self._loop is None:
            return
        fresh, lane.unnoted = lane.unnoted, []
        now = time.time()
        for task in fresh:
            if task.id not in self._noted:
                self._noted.add(task.id)
                self._notes.put(
                    TimelineEntry(at=now, step=Step.WAITING, event_id=task.event_id,
                                  task_id=task.id, worker=task.worker, detail=why)
                )  # fmt: skip

    async def _update(
        self,
        task_id: str,
        state: TaskState,
        only_from: frozenset[TaskState],
        step: str,
        detail: str,
        *,
        error: str | None = None,
    ) -> Task | None:
        return await self._updates.add(
            TaskUpdate(task_id=task_id, state=state, only_from=only_from, step=step,
                       detail=detail, error=error)
        )  # fmt: skip

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
        due = await self._on(
            self._reads, self._store.due_tasks, now=time.time(), limit=5000,
            skip=frozenset(self._known),
        )  # fmt: skip
        self.submit(due)
        await self._abort_cancelled()
        await self._view.sync_busy(self._running())

    async def _abort_cancelled(self) -> None:
        """Stop sends whose task was cancelled meanwhile (by `mecha task cancel`)."""
        flying = {task.id: flight for flight, task in self._flights.items()}
        if not flying:
            return
        states = await self._on(self._reads, self._store.task_states, task_ids=list(flying))
        for task_id, state in states.items():
            if state is TaskState.CANCELLED and task_id not in self._aborted:
                self._aborted.add(task_id)
                flying[task_id].cancel()

    async def _refresh_targets(self) -> None:
        await self._view.refresh()
        for name, target in self._view.targets.items():
            if name in self._lanes:
                self._lanes[name].bucket.reshape(target.rate, target.burst)
        self._wake.set()

    def _running(self) -> dict[str, int]:
        return {name: lane.running for name, lane in self._lanes.items() if lane.running}

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


def _tell(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()
