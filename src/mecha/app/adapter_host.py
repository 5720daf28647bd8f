"""The adapters `mecha serve` runs: each started from its worker's definition, stopped, replaced.

An adapter runs in this process on a loopback port behind the worker contract, with a key
made for that run (kept in ``keys``, which the dispatcher sends with), so it shows an
endpoint and health in `mecha worker ls` like every other worker and nothing else on the
machine can spend its model credentials. Each running adapter remembers the settings it
was started with (``AdapterSettings``): a new definition that changes them needs a new
adapter; one that changes only prompts, rules or policy does not.
"""

from __future__ import annotations

import asyncio
import logging
import secrets as random_secrets
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mecha.engine.registry import LoadedWorker
from mecha.engine.targets import LocalWorker
from mecha.errors import MechaError, WorkerNotFound
from mecha.secrets import Secrets
from mecha.store import Store
from mecha.worker.kind import WorkerState
from mecha.worker.spec import AdapterSpec

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)
PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class AdapterSettings:
    """What a running adapter was made from: another value needs another adapter."""

    adapter: AdapterSpec
    concurrency: int
    timeout: float


def adapter_settings(worker: LoadedWorker | None) -> AdapterSettings | None:
    """The settings an adapter for ``worker`` runs with; None if it is no (usable) adapter."""
    spec = worker.spec if worker is not None else None
    if spec is None or spec.adapter is None:
        return None
    return AdapterSettings(spec.adapter, spec.concurrency, spec.timeout_seconds)


@dataclass(frozen=True)
class _Running:
    settings: AdapterSettings
    close: Callable[[], Awaitable[None]]
    #: the model API key its ``token:`` resolved to when it started (None: no token)
    upstream_key: str | None = None


class AdapterHost:
    """Adapters by worker name; every state change is recorded in the store."""

    def __init__(
        self,
        *,
        store: Store,
        writer: Executor,
        secrets: Callable[[], Secrets],
        keys: MutableMapping[str, str],
        client: Callable[[], httpx.AsyncClient],
        local: MutableMapping[str, LocalWorker] | None = None,
        shared: bool = False,
    ) -> None:
        self._store = store
        #: this node's adapters as the dispatcher sends to them (the store's record of an
        #: adapter worker is whatever node wrote it last)
        self.local: MutableMapping[str, LocalWorker] = local if local is not None else {}
        #: other nodes serve from the same database: stopping this serve leaves the
        #: record alone (their adapters still run)
        self._shared = shared
        self._writer = writer
        self._secrets = secrets
        self._keys = keys
        self._client = client
        self._running: dict[str, _Running] = {}

    def settings(self, name: str) -> AdapterSettings | None:
        """What adapter ``name`` runs with now (None: it does not run)."""
        running = self._running.get(name)
        return running.settings if running is not None else None

    async def start(self, worker: LoadedWorker, *, verb: str = "started") -> str:
        """Start ``worker``'s adapter and record it online (or error); what happened, briefly
        ("adapter started", with ``verb`` for "started").

        An adapter already running under that name is stopped once the new one is up (the
        embedded model, when both use it, is then kept rather than started again).
        """
        from mecha.runtimes.adapters.server import start_adapter
        from mecha.runtimes.contract import Health
        from mecha.runtimes.endpoint import probe

        settings = adapter_settings(worker)
        assert settings is not None
        adapter = settings.adapter
        old = self._running.pop(worker.name, None)
        try:
            upstream_key = (
                self._secrets().resolve(adapter.token)
                if adapter.token and not adapter.api_key
                else None
            )
            shim_key = random_secrets.token_urlsafe(24)
            running = await start_adapter(
                worker.name, adapter, api_key=shim_key, concurrency=settings.concurrency,
                upstream_key=upstream_key, timeout=settings.timeout,
            )  # fmt: skip
        except MechaError as exc:
            await _close(worker.name, old)
            log.error("adapter %s did not start: %s", worker.name, exc)
            await self.set_state(worker.name, WorkerState.ERROR, error=str(exc), endpoint="")
            return f"adapter did not start: {exc.message}"
        await _close(worker.name, old)
        self._keys[worker.name] = shim_key
        self._running[worker.name] = _Running(settings, running.close, upstream_key)
        health = await probe(self._client(), running.url, timeout=PROBE_TIMEOUT, api_key=shim_key)
        if health is Health.OK:
            await self.set_state(worker.name, WorkerState.ONLINE, endpoint=running.url)
            log.info("adapter %s (%s) serves on %s", worker.name, adapter.type, running.url)
            return f"adapter {verb}"
        why = f"the model API at {adapter.upstream or 'the embedded model'} is not answering"
        log.error("adapter %s: %s; its tasks wait until it answers", worker.name, why)
        await self.set_state(worker.name, WorkerState.ERROR, endpoint=running.url, error=why)
        return f"adapter {verb}; {why}"

    def stale_tokens(self) -> list[str]:
        """Running adapters whose ``token:`` names another value now (secrets.yml was read
        again), or none at all: they need a restart to use it."""
        secrets = self._secrets()
        stale = []
        for name, running in sorted(self._running.items()):
            adapter = running.settings.adapter
            if not adapter.token or adapter.api_key:
                continue
            try:
                now: str | None = secrets.resolve(adapter.token)
            except MechaError:
                now = None
            if now != running.upstream_key:
                stale.append(name)
        return stale

    async def stop(self, name: str, *, state: WorkerState | None, error: str = "") -> None:
        """Stop adapter ``name``; record ``state`` (None: its record is gone, leave it)."""
        await _close(name, self._running.pop(name, None))
        self._keys.pop(name, None)
        self.local.pop(name, None)
        if state is not None:
            await self.set_state(name, state, endpoint="", error=error)

    async def stop_all(self) -> None:
        """Stop every adapter and record it offline (serve is stopping); on a shared database
        the records are left as they are, since other nodes run their own."""
        for name in list(self._running):
            await self.stop(name, state=None if self._shared else WorkerState.OFFLINE)

    async def set_state(
        self, name: str, state: WorkerState, *, endpoint: str, error: str = ""
    ) -> None:
        """Record ``state`` (here, and in the store); a worker removed meanwhile is left
        removed."""
        if state is WorkerState.OFFLINE:
            self.local.pop(name, None)
        else:
            self.local[name] = LocalWorker(state, endpoint, error)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._writer,
                lambda: self._store.set_worker_state(name, state, error=error, endpoint=endpoint),
            )
        except WorkerNotFound:
            return
        except MechaError as exc:
            log.error("worker %s: recording state %s failed: %s", name, state, exc)


async def _close(name: str, running: _Running | None) -> None:
    if running is None:
        return
    try:
        await running.close()
    except Exception as exc:  # the old adapter going away badly must not stop the new one
        log.warning("adapter %s: stopping it failed: %s: %s", name, type(exc).__name__, exc)
