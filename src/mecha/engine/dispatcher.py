"""Sending tasks to workers: per-worker queues, limits, retries, recovery and draining.

Tasks live in the store; the dispatcher's memory only says which of them it is handling.
Each worker has a lane (``lanes``): a FIFO queue, its concurrency (default 1), a token
bucket (default 2/s, burst 5), served in turn under a global limit (default 16). A task of
a busy worker waits in its lane (upstream failed it at once), and so do those of a worker
that is offline, in error, or held while serve applies its new definition. Each send is
one ``task_send`` attempt: claimed, sent, settled; a transient failure comes back after
its backoff, past ``max_retries`` it is dead-lettered.

Every second the poll loop re-reads workers (state, endpoint, definition) and picks up due
tasks it does not hold: retries made by `mecha task retry` in another process, tasks left
behind by a crash, API tasks. Each claim holds a lease this node renews (``leases``); at
start, and at each poll, running tasks whose lease ended (their node died) are put back to
pending and sent again. A serve that owns its database (SQLite) puts every running task
back to pending and busy workers back to online at start instead (``Store.recover``):
delivery to workers is at least once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, MutableMapping, Sequence
from concurrent.futures import Executor

from mecha.budget import BudgetLimit
from mecha.duration import format_duration
from mecha.engine import log_context
from mecha.engine.batcher import Batcher
from mecha.engine.budgets import Budgets
from mecha.engine.dispatch_polls import StorePolling
from mecha.engine.dispatch_settings import DispatchSettings
from mecha.engine.histogram import Histogram
from mecha.engine.lanes import Lane, Lanes, Parked
from mecha.engine.leases import NodeLeases, anonymous_node
from mecha.engine.registry import WorkerRegistry
from mecha.engine.targets import LocalWorker, Target
from mecha.engine.task_send import Retry, Send, TaskSender
from mecha.engine.worker_figures import WorkerFigures
from mecha.engine.worker_view import Probe, WorkerView
from mecha.engine.writeback import WriteBack
from mecha.errors import MechaError
from mecha.store import NodeRecord, Store, TaskUpdate
from mecha.store.flow import held_detail
from mecha.task import Task, TaskState
from mecha.timeline import Step, TimelineEntry

__all__ = ["HELD_DETAIL", "DispatchSettings", "Dispatcher"]

log = logging.getLogger(__name__)

_PENDING = frozenset({TaskState.PENDING})
_RUNNING = frozenset({TaskState.RUNNING})
HELD_DETAIL = "its worker is at its concurrency or rate limit (counted across all nodes)"


class Dispatcher(StorePolling):
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
        local: MutableMapping[str, LocalWorker] | None = None,
        writeback: WriteBack | None = None,
        node: NodeRecord | None = None,
    ) -> None:
        self._store = store
        #: this serve as a node of the database: its heartbeat and the leases it sweeps
        self.leases = NodeLeases(
            store=store, node=node if node is not None else anonymous_node(),
            lease=settings.lease, executor=reads, own_database=settings.own_database,
        )  # fmt: skip
        self._updates = updates
        self._notes = notes
        self._writer = writer
        self._reads = reads
        self.settings = settings
        self._view = WorkerView(
            store=store, registry=registry, writer=writer, reads=reads, probe=probe,
            keys=keys if keys is not None else {}, local=local,
        )  # fmt: skip
        self._lanes = Lanes()
        self._known: set[str] = set()
        self._noted: set[str] = set()
        #: tasks whose send is being abandoned because they were cancelled
        self._aborted: set[str] = set()
        self._flights: dict[asyncio.Task[None], Task] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counts: dict[str, int] = dict.fromkeys(
            ("sent", "completed", "failed", "retried", "dead_lettered", "recovered", "held",
             "superseded"), 0,
        )  # fmt: skip
        #: ms from a task being stored (or due again) to its send starting
        self.latency = Histogram()
        #: the counts and latencies by worker (/metrics' worker-labelled series)
        self.by_worker = WorkerFigures()
        #: checks for cancelled sends done so far (tests wait on it)
        self.polls = 0
        self.budgets = Budgets(
            store=store, updates=updates, writer=writer, budget=settings.budget,
            recheck=settings.budget_recheck,
        )  # fmt: skip
        self._sender = TaskSender(
            updates=updates, send=send, writeback=writeback, retry_base=settings.retry_base,
            retry_cap=settings.retry_cap, counts=self.counts, latency=self.latency,
            unreachable=self._check_soon, max_result=settings.max_result,
            node=self.leases.node.id, lease=settings.lease, shared=not settings.own_database,
            budgets=self.budgets, by_worker=self.by_worker,
        )  # fmt: skip
        #: set when another node may have freed a slot or made work (``nudge``)
        self._nudged = asyncio.Event()
        #: keyed tasks whose claim waited for their flow key, by (worker, key), in order
        self._parked = Parked()

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Recover what a stop left behind, load due tasks, start the loops."""
        self._loop = asyncio.get_running_loop()
        requeued, reset = await self.leases.start()
        self.counts["recovered"] = requeued
        if requeued or reset:
            log.info("recovered %d in-flight tasks and %d busy workers", requeued, reset)
        await self._poll_once()
        for name, body in (
            ("dispatch", self._schedule_loop),
            ("dispatch-poll", self._poll_loop),
            ("dispatch-nudges", self._nudge_loop),
            ("dispatch-health", self._health_loop),
        ):
            self._loops.append(self._loop.create_task(body(), name=name))

    async def drain(self, timeout: float | None = None, *, stop_node: bool = True) -> int:
        """Stop sending; wait for tasks in flight up to ``timeout``; requeue the rest.

        Returns how many were requeued for the next start. With ``stop_node``, the node's
        heartbeat stops and its stop is recorded; without, the caller does that with
        ``leases.stop()`` once its writes are drained too (their leases are renewed until
        then).
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
                *(self._update(t.id, TaskState.PENDING, _RUNNING, Step.REQUEUED, detail,
                               node=self.leases.node.id) for t in left),
                return_exceptions=True,
            )  # fmt: skip
        await self.budgets.close()
        await self._view.sync_busy({}, shared=not self.settings.own_database)
        if stop_node:
            await self.leases.stop()
        return len(left)

    # --- intake -----------------------------------------------------------------------

    def submit(self, tasks: Sequence[Task]) -> None:
        """Queue pending tasks (from any coroutine on the server's loop); returns at once.

        A task not due yet (a flow's debounce) is queued when it is."""
        now = time.time()
        for task in tasks:
            if task.state is TaskState.PENDING and task.id not in self._known:
                self._known.add(task.id)
                if task.next_retry_at > now and self._loop is not None:
                    self._loop.call_later(task.next_retry_at - now, self._requeue, task)
                    continue
                lane = self._lane(task.worker)
                lane.queue.append(task)
                lane.unnoted.append(task)
        self._wake.set()

    def submit_threadsafe(self, tasks: Sequence[Task]) -> None:
        """``submit`` from another thread (the store writer, after a commit)."""
        if tasks and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.submit, list(tasks))

    def nudge_threadsafe(self) -> None:
        """Look for due tasks now, not at the next poll: another node ended a task (a slot of
        a worker limited across nodes may be free) or made one. Safe from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._nudged.set)

    def queued(self) -> int:
        """Tasks waiting in lanes (not in flight, not waiting for a retry time)."""
        return self._lanes.queued()

    def in_flight(self) -> int:
        """Tasks being sent right now."""
        return len(self._flights)

    def load(self) -> dict[str, tuple[int, int]]:
        """(queued, in flight) by worker, for each worker with a lane."""
        return {lane.name: (len(lane.queue), lane.running) for lane in self._lanes}

    # --- holding a worker while serve applies its new definition ----------------------

    def hold(self, name: str, why: str) -> int:
        """Send none of worker ``name``'s tasks until ``release``; they wait saying ``why``."""
        return self._view.hold(name, why)

    async def release(self, name: str, hold: int) -> None:
        """Read the workers again (new endpoints, keys) and end ``hold`` of worker ``name``."""
        await self._view.refresh(release={name: hold})
        self._wake.set()

    async def settled(self, name: str) -> None:
        """Return once none of worker ``name``'s tasks is in flight."""
        await self._lanes.settled(name)

    def budget_limits(self) -> dict[str, BudgetLimit]:
        """The budgets to show (each worker's as this serve loaded it, and config.yml's)."""
        return self.budgets.shown(self._view.targets)

    def stats(self) -> dict[str, int]:
        """Figures for /health: tasks queued and in flight, and counts since the start."""
        figures = {"tasks_queued": self.queued(), "tasks_in_flight": self.in_flight()}
        figures.update({f"tasks_{name}": count for name, count in self.counts.items()})
        figures["node_lease_ms"] = round(self.settings.lease * 1000)
        figures.update(self.budgets.stats())
        return figures

    # --- scheduling -------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            self._launch_ready()

    def _launch_ready(self) -> None:
        """Start every task the limits allow, trying the lanes in turn (``Lanes.in_turn``)."""
        if not self._view.loaded or self._closing:
            return
        limit = self.settings.concurrency
        while len(self._flights) < limit:
            for turn, lane in self._lanes.in_turn():
                if self._launch_one(lane):
                    self._lanes.took(turn)
                    break
            else:
                return

    def _launch_one(self, lane: Lane) -> bool:
        target = self._view.targets.get(lane.name)
        if target is None:
            self._drop_unregistered(lane)
            return False
        if target.waiting:
            for entry in lane.waiting_notes(target.waiting, self._noted):
                self._notes.put(entry)  # once per task, batched with task updates
            return False
        lane.unnoted.clear()
        if lane.running >= target.concurrency or lane.held:
            return False
        wait = lane.bucket.take(time.monotonic())
        if wait > 0:
            assert self._loop is not None
            lane.wake_later(self._loop, wait, self._wake)
            return False
        task = lane.queue.popleft()
        lane.running += 1
        assert self._loop is not None
        flight = self._loop.create_task(self._run(lane, target, task), name=f"task-{task.id}")
        self._flights[flight] = task
        flight.add_done_callback(self._flights.pop)
        return True

    def _lane(self, name: str) -> Lane:
        return self._lanes.lane(name, self._view.targets.get(name))

    # --- one task ---------------------------------------------------------------------

    async def _run(self, lane: Lane, target: Target, task: Task) -> None:
        log_context.for_task(task.id, task.worker, task.event_id)  # this asyncio task's lines
        retry: Retry | None = None
        try:
            retry = await self._sender.attempt(target, task)
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
            lane.finished()
            self._aborted.discard(task.id)
            if retry is None:
                self._known.discard(task.id)
                self._noted.discard(task.id)
            if task.flow_key:  # its key's next task may go now
                self._unpark(self._parked.take(task.worker, task.flow_key))
            self._wake.set()
        self._after(lane, task, retry)

    def _after(self, lane: Lane, task: Task, retry: Retry | None) -> None:
        """What follows a send: a held claim waits (parked under its flow key, or first in
        its lane), a retry is queued after its delay, a free slot lets the lane go."""
        if retry is not None and retry.held and task.flow_key:
            # its key has another task running, or an older one waiting: it goes after it
            self._parked.put(retry.task)
            self._note_waiting(task, held_detail(task.flow_key))
        elif retry is not None and retry.held:
            # first in its lane again; the lane waits for a slot to free up somewhere
            lane.queue.appendleft(retry.task)
            lane.held = True
            self._note_waiting(task, HELD_DETAIL)
        elif retry is not None and self._loop is not None:
            self._loop.call_later(retry.delay, self._requeue, retry.task)
        elif lane.held:
            lane.held = False  # one of ours ended: a slot of its worker is free

    def _note_waiting(self, task: Task, why: str) -> None:
        """A ``waiting`` step saying ``why``, once per task."""
        if task.id not in self._noted:
            self._noted.add(task.id)
            self._notes.put(TimelineEntry(
                at=time.time(), step=Step.WAITING, event_id=task.event_id, task_id=task.id,
                worker=task.worker, detail=why,
            ))  # fmt: skip

    def _unpark(self, tasks: Sequence[Task]) -> None:
        """Parked tasks back to the front of their lanes, in their order."""
        for task in reversed(tasks):
            if not self._closing and task.id in self._known:
                self._lane(task.worker).queue.appendleft(task)
        if tasks:
            self._wake.set()

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

    async def _update(
        self,
        task_id: str,
        state: TaskState,
        only_from: frozenset[TaskState],
        step: str,
        detail: str,
        *,
        error: str | None = None,
        node: str = "",
    ) -> Task | None:
        return await self._updates.add(
            TaskUpdate(task_id=task_id, state=state, only_from=only_from, step=step,
                       detail=detail, error=error, node=node)
        )  # fmt: skip
