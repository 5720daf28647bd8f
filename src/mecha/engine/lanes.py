"""Per-worker lanes: each worker's FIFO queue, what it has in flight, its token bucket.

``Lanes.in_turn`` says in which order to try the lanes with queued tasks: the least busy
worker first, ties round-robin, so a worker with many slow tasks cannot take every free
slot while another worker's tasks wait. ``settled`` waits until a worker has nothing in
flight (serve restarts an adapter only then). A lane whose tasks cannot go says why once
per task (``waiting_notes``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from mecha.engine.pacing import TokenBucket
from mecha.engine.targets import Target
from mecha.task import Task
from mecha.timeline import Step, TimelineEntry


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
    #: a claim was held back by the worker's limits across nodes: none goes until a slot
    #: may be free (a nudge, a poll, one of this lane's tasks ending)
    held: bool = False
    #: queued since the lane last said why it waits (each task is told once)
    unnoted: list[Task] = field(default_factory=list)
    #: told when nothing is in flight any more (``Lanes.settled``)
    idle: list[asyncio.Future[None]] = field(default_factory=list)

    def wake_later(
        self, loop: asyncio.AbstractEventLoop, delay: float, wake: asyncio.Event
    ) -> None:
        """Set ``wake`` in ``delay`` seconds (its bucket is empty), unless a timer is set."""
        if self.timer is None:

            def fire() -> None:
                self.timer = None
                wake.set()

            self.timer = loop.call_later(delay, fire)

    def waiting_notes(self, why: str, noted: set[str]) -> list[TimelineEntry]:
        """A ``waiting`` step for each task queued since the last call and not in ``noted``."""
        fresh, self.unnoted = self.unnoted, []
        now = time.time()
        entries = []
        for task in fresh:
            if task.id not in noted:
                noted.add(task.id)
                entries.append(
                    TimelineEntry(at=now, step=Step.WAITING, event_id=task.event_id,
                                  task_id=task.id, worker=task.worker, detail=why)
                )  # fmt: skip
        return entries

    def finished(self) -> None:
        """One of its tasks is no longer in flight."""
        self.running -= 1
        if self.idle and not self.running:
            for waiter in self.idle:
                if not waiter.done():
                    waiter.set_result(None)
            self.idle.clear()


class Lanes:
    """Every worker's lane, by name, made on first use."""

    def __init__(self) -> None:
        self._lanes: dict[str, Lane] = {}
        self._next = 0

    def __iter__(self) -> Iterator[Lane]:
        return iter(self._lanes.values())

    def get(self, name: str) -> Lane | None:
        """Worker ``name``'s lane, if it has one."""
        return self._lanes.get(name)

    def lane(self, name: str, target: Target | None) -> Lane:
        """Worker ``name``'s lane, made (paced as ``target`` says) if it has none yet."""
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = Lane(name)
            if target is not None:
                lane.bucket.reshape(target.rate, target.burst)
        return lane

    def in_turn(self) -> list[tuple[int, Lane]]:
        """Lanes with queued tasks in the order to try them, each with the turn it ends."""
        names = [name for name, lane in self._lanes.items() if lane.queue]
        count = len(names)
        if not count:
            return []
        start = self._next % count
        order = sorted(
            range(count), key=lambda s: (self._lanes[names[(start + s) % count]].running, s)
        )
        return [((start + s + 1) % count, self._lanes[names[(start + s) % count]]) for s in order]

    def took(self, turn: int) -> None:
        """A lane from ``in_turn`` launched a task: the next round starts after it."""
        self._next = turn

    def queued(self) -> int:
        """Tasks waiting in lanes."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    def running(self) -> dict[str, int]:
        """Tasks in flight by worker, for workers with any."""
        return {name: lane.running for name, lane in self._lanes.items() if lane.running}

    async def settled(self, name: str) -> None:
        """Return once none of worker ``name``'s tasks is in flight."""
        lane = self._lanes.get(name)
        while lane is not None and lane.running:
            waiter = asyncio.get_running_loop().create_future()
            lane.idle.append(waiter)
            await waiter


class Parked:
    """Keyed tasks whose claim waited for their flow key (another task of it runs, or an
    older one waits), by (worker, key), in the order they came."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], list[Task]] = {}

    def put(self, task: Task) -> None:
        """Park ``task`` under its worker and key."""
        self._by_key.setdefault((task.worker, task.flow_key), []).append(task)

    def take(self, worker: str, key: str) -> list[Task]:
        """The tasks parked under ``worker`` and ``key``, in order; none stay."""
        return self._by_key.pop((worker, key), [])

    def take_all(self) -> list[Task]:
        """Every parked task, key by key, each key's in order; none stay."""
        taken = [task for tasks in self._by_key.values() for task in tasks]
        self._by_key.clear()
        return taken
