"""This serve as a node of the database: its registration, heartbeat and lease sweeps.

Every claim a node makes (pending → running) holds a lease: ``lease`` seconds, renewed
with the node's heartbeat every ``lease / 3`` seconds in the same transaction. A node that
dies stops renewing; once its leases end, any node's sweep (at start, and at each
dispatcher poll) puts its tasks back to pending and sends them again. A node never sweeps
its own tasks: they are in flight here, and its heartbeat keeps them.

A database one serve owns (SQLite, under its serve mark) takes back every running task at
start instead (``Store.recover``), as before leases: no other node can be running them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from mecha.errors import MechaError
from mecha.store import NodeRecord, Store

log = logging.getLogger(__name__)

#: how long a claim holds without a heartbeat (config.yml ``dispatch: lease:``)
DEFAULT_LEASE = 30.0


def anonymous_node() -> NodeRecord:
    """A node of no known host (tests that build the engine by hand)."""
    return NodeRecord(id=f"node-{uuid.uuid4().hex[:8]}", host="", pid=0)


class NodeLeases:
    """Registers the node, renews its leases, takes back the tasks of nodes gone silent."""

    def __init__(
        self,
        *,
        store: Store,
        node: NodeRecord,
        lease: float,
        executor: Executor,
        own_database: bool,
    ) -> None:
        self._store = store
        self.node = node
        self.lease = lease
        #: not the store's writer thread: a long batch there must not delay a heartbeat
        self._executor = executor
        #: one serve owns the database: at start every running task is ours to take back
        self.own_database = own_database
        self._beats: asyncio.Task[None] | None = None
        self._stopped = False
        #: sweeps done so far (tests wait on it)
        self.sweeps = 0

    async def start(self) -> tuple[int, int]:
        """Register this node, take back what a stop left behind, start the heartbeat.

        Returns (tasks taken back, busy workers reset)."""
        await self._on(self._store.register_node, self.node)
        if self.own_database:
            requeued, reset = await self._on(self._store.recover)
        else:
            requeued, reset = len(await self._sweep()), 0
        self._beats = asyncio.get_running_loop().create_task(
            self._beat_forever(), name="node-heartbeat"
        )
        return requeued, reset

    async def sweep(self) -> int:
        """Take back the running tasks of other nodes whose lease ended; how many."""
        if self.own_database:
            return 0
        try:
            taken = await self._sweep()
        except MechaError as exc:  # the poll goes on: due tasks are still picked up
            log.error("node %s: taking back tasks whose lease ended failed: %s", self.node.id, exc)
            return 0
        self.sweeps += 1
        if taken:
            log.info("took back %d tasks whose node stopped renewing its lease", len(taken))
        return len(taken)

    async def stop_heartbeat(self) -> None:
        """Stop renewing this node's leases, as a node that hangs would (tests use it)."""
        if self._beats is not None:
            self._beats.cancel()
            await asyncio.gather(self._beats, return_exceptions=True)

    async def stop(self) -> None:
        """Stop the heartbeat and record that this node stopped (its tasks were drained)."""
        if self._stopped:
            return
        self._stopped = True
        await self.stop_heartbeat()
        try:
            await self._on(self._store.stop_node, self.node.id)
        except MechaError as exc:
            log.error("node %s: recording its stop failed: %s", self.node.id, exc)

    async def _sweep(self) -> list[str]:
        taken: list[str] = await self._on(
            self._store.take_back, now=time.time(), exclude_node=self.node.id
        )
        return taken

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._on(self._store.heartbeat, self.node.id, lease=self.lease)
            except MechaError as exc:
                log.error("node %s: the heartbeat failed: %s", self.node.id, exc)

    async def _on(self, call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))
