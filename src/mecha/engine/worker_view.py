"""The workers as the dispatcher sends to them: read from the store, kept honest by health.

``refresh`` re-reads definitions (through the registry) and states (another process may
have started or stopped a worker); ``check`` asks a worker's ``/health`` and records
``error`` or ``online``; ``sync_busy`` persists busy ⇄ online as the dispatcher's lanes
fill and empty, so `mecha worker ls` in another process sees it. Every state change is
guarded by the states it may come from, so a concurrent `mecha worker stop` wins.

``hold`` makes a worker's tasks wait (serve is applying its new definition) until
``refresh(release=...)`` reads its new endpoint and lets them go; a release names the hold
it ends, so it cannot end a newer hold of the same worker. Refreshes take turns, so one
that read the store before a restart cannot overwrite what a later one read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

from mecha.engine.registry import WorkerRegistry
from mecha.engine.targets import LocalWorker, Target, build_targets
from mecha.errors import MechaError, WorkerStateError
from mecha.store import Store
from mecha.task import TaskState
from mecha.worker.kind import WorkerState

log = logging.getLogger(__name__)

#: asks a worker's /health: "" when healthy (busy counts as healthy), else why not
Probe = Callable[[Target], Awaitable[str]]
_UP = frozenset({WorkerState.ONLINE, WorkerState.BUSY})


class WorkerView:
    """Every registered worker's Target, by name."""

    def __init__(
        self,
        *,
        store: Store,
        registry: WorkerRegistry,
        writer: Executor,
        reads: Executor,
        probe: Probe,
        keys: Mapping[str, str],
        local: MutableMapping[str, LocalWorker] | None = None,
    ) -> None:
        self._store = store
        #: this node's adapters (None: the store's records are the truth, as in unit tests)
        self._local = local
        self._registry = registry
        self._writer = writer
        self._reads = reads
        self._probe = probe
        self._keys = keys
        self.targets: dict[str, Target] = {}
        #: whether the workers were read at least once
        self.loaded = False
        #: workers whose tasks wait while serve applies their new definition, and why
        self.held: dict[str, str] = {}
        self._holds: dict[str, int] = {}
        self._serial = 0
        self._reading = asyncio.Lock()

    async def refresh(self, *, release: Mapping[str, int] | None = None) -> None:
        """Read definitions and states again; end the holds in ``release`` (name → hold)."""
        async with self._reading:
            for name, hold in (release or {}).items():
                if self._holds.get(name) == hold:
                    del self._holds[name]
                    self.held.pop(name, None)
            loaded = await self._on(self._reads, self._registry.refresh)
            records = await self._on(self._reads, self._store.list_workers)
            self.targets = build_targets(
                loaded, records, keys=self._keys, held=self.held, local=self._local
            )
            self.loaded = True

    def hold(self, name: str, why: str) -> int:
        """Make worker ``name``'s tasks wait, saying ``why``; the hold, to end it with."""
        self._serial += 1
        self._holds[name] = self._serial
        self.held[name] = why
        target = self.targets.get(name)
        if target is not None:
            self.targets[name] = replace(target, waiting=why)
        return self._serial

    async def sync_busy(self, running: Mapping[str, int], *, shared: bool = False) -> None:
        """Record busy for workers with tasks in flight, online for the others.

        ``shared``: other nodes send from the same database, so a worker with nothing in
        flight here goes back to online only if no node runs one of its tasks (else the
        nodes would flip it at each poll)."""
        for name, target in list(self.targets.items()):
            busy = running.get(name, 0) > 0
            if busy and target.state is WorkerState.ONLINE:
                await self.set_state(target, WorkerState.BUSY, {WorkerState.ONLINE})
            elif not busy and target.state is WorkerState.BUSY:
                if shared and await self._runs_elsewhere(name):
                    continue
                await self.set_state(target, WorkerState.ONLINE, {WorkerState.BUSY})

    async def _runs_elsewhere(self, name: str) -> bool:
        call = functools.partial(
            self._store.list_tasks, worker=name, state=TaskState.RUNNING, limit=1
        )
        try:
            return bool(await self._on(self._reads, call))
        except MechaError as exc:
            log.error("worker %s: reading its tasks in flight failed: %s", name, exc)
            return True

    async def check_all(self, running: Mapping[str, int]) -> bool:
        """Ask every started worker's /health; True if one came back from error."""
        watched = [
            t
            for t in self.targets.values()
            if t.state is not WorkerState.OFFLINE and t.endpoint and t.name not in self.held
        ]
        found = await asyncio.gather(
            *(self.check(t, running.get(t.name, 0)) for t in watched), return_exceptions=True
        )
        return any(result is True for result in found)

    async def check(self, target: Target, running: int) -> bool:
        """Ask one worker's /health and record what it says; True if it came back."""
        why = await self._probe(target)
        current = self.targets.get(target.name, target)
        if current.endpoint != target.endpoint or target.name in self.held:
            return False  # restarted (or restarting) meanwhile: this answer is about the old one
        if why and current.state in _UP:
            await self.set_state(current, WorkerState.ERROR, set(_UP), error=why)
        elif not why and current.state is WorkerState.ERROR:
            state = WorkerState.BUSY if running else WorkerState.ONLINE
            await self.set_state(current, state, {WorkerState.ERROR})
            return True
        return False

    async def set_state(
        self, target: Target, state: WorkerState, only_from: set[WorkerState], error: str = ""
    ) -> None:
        """Record ``state`` if the worker is still in one of ``only_from``."""
        call = functools.partial(
            self._store.set_worker_state, target.name, state, error=error, only_from=only_from
        )
        try:
            await self._on(self._writer, call)
        except WorkerStateError:
            return  # changed meanwhile (e.g. `mecha worker stop`): the next refresh sees it
        except MechaError as exc:
            log.error("worker %s: recording state %s failed: %s", target.name, state, exc)
            return
        local = self._local
        here = local.get(target.name) if local is not None else None
        if local is not None and here is not None and here.endpoint == target.endpoint:
            local[target.name] = replace(here, state=state, error=error)  # this node's adapter
        if state is not target.state:
            log.info("worker %s: %s → %s%s", target.name, target.state, state,
                     f" ({error})" if error else "")  # fmt: skip
        current = self.targets.get(target.name)
        if current is None or current.endpoint != target.endpoint:
            return  # restarted meanwhile: the next refresh reads its state
        waiting = "" if state is not WorkerState.ERROR else f"worker is in error ({error})"
        waiting = self.held.get(target.name, waiting)
        self.targets[target.name] = replace(current, state=state, waiting=waiting)

    async def _on(self, executor: Executor, call: Callable[..., Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, call)
