"""The worker side of `mecha serve`: adapters it runs, the client it sends with, the dispatcher.

Built by ``mecha.app.serve.Ingest``; started after the store writer, stopped before it (the
drain writes the last task states through it). Adapters run in this process
(``mecha.app.adapter_host``); worker changes made while serve runs are applied by
``mecha.app.worker_reload``. While it runs, serve holds the database's serve mark
(``mecha.store.serve_mark``), so other commands know a serve is there to pick changes up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING

from mecha import __version__
from mecha.app.adapter_host import PROBE_TIMEOUT, AdapterHost
from mecha.app.worker_reload import WorkerReload
from mecha.engine.batcher import Batcher
from mecha.engine.dispatcher import Dispatcher, DispatchSettings
from mecha.engine.leases import anonymous_node
from mecha.engine.progress import ProgressWriter
from mecha.engine.registry import LoadedWorker, WorkerRegistry
from mecha.engine.targets import LocalWorker, Target
from mecha.engine.write_tries import WriteBackSettings
from mecha.engine.writeback import WriteBack
from mecha.result import TaskResult
from mecha.runtimes.http1 import Pool
from mecha.secrets import Secrets
from mecha.store import NodeRecord, Store, TaskUpdate, WritePlan, WriteRecord, WriteUpdate
from mecha.store.serve_mark import ServeMark
from mecha.task import Task
from mecha.timeline import TimelineEntry

if TYPE_CHECKING:
    import httpx

    from mecha.runtimes.managed.pools import Disposables

log = logging.getLogger(__name__)


class WorkerRuntime:
    """Adapters, the worker HTTP client and the dispatcher, in start and stop order."""

    def __init__(
        self,
        *,
        store: Store,
        registry: WorkerRegistry,
        writer: Executor,
        reads: Executor,
        settings: DispatchSettings,
        secrets: Secrets,
        writeback: WriteBackSettings | None = None,
        db_path: Path | None = None,
        node: NodeRecord | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.secrets = secrets
        self.keys: dict[str, str] = {}
        #: this node's adapters: where each runs here and its state (node-local)
        self.local: dict[str, LocalWorker] = {}
        self._writer = writer
        self._reads = reads
        self._mark = ServeMark(db_path) if db_path is not None else None
        #: marks this serve's disposable containers, so it sweeps no other Mecha's
        self._database = db_path.resolve() if db_path is not None else None
        self._client: httpx.AsyncClient | None = None  # health probes
        self._pool = Pool()  # task sends
        self._disposables: Disposables | None = None  # made at start if a worker needs it
        self.updates: Batcher[TaskUpdate, Task | None] = Batcher(
            store.update_tasks, executor=writer, name="task-updates"
        )
        self.notes: Batcher[TimelineEntry, None] = Batcher(
            functools.partial(_add_timeline, store), executor=writer, name="timeline"
        )
        self.write_plans: Batcher[WritePlan, list[WriteRecord]] = Batcher(
            store.plan_writes, executor=writer, name="write-plans"
        )
        self.write_updates: Batcher[WriteUpdate, WriteRecord | None] = Batcher(
            store.update_writes, executor=writer, name="write-updates"
        )
        self.progress = ProgressWriter(store, writer=writer)  # streamed tokens → the store
        node = node if node is not None else anonymous_node()
        self.writeback = WriteBack(
            store=store, registry=registry, writers={}, previews={}, plans=self.write_plans,
            updates=self.write_updates, reads=reads, node=node.id,
            settings=writeback or WriteBackSettings(
                poll_interval=settings.poll_interval, lease=settings.lease
            ),
        )  # fmt: skip
        self.dispatcher = Dispatcher(
            store=store, registry=registry, updates=self.updates, notes=self.notes,
            writer=writer, reads=reads, send=self._send, probe=self._probe,
            settings=settings, keys=self.keys, writeback=self.writeback, node=node,
            local=self.local,
        )  # fmt: skip
        self.adapters = AdapterHost(
            store=store, writer=writer, secrets=lambda: self.secrets, keys=self.keys,
            client=self._probe_client, local=self.local, shared=not settings.own_database,
        )  # fmt: skip
        self.reload = WorkerReload(
            registry=registry, dispatcher=self.dispatcher, adapters=self.adapters,
            disposables=self._pools, store=store, writer=writer, reads=reads,
            secrets=lambda: self.secrets, notes=self.notes,
        )  # fmt: skip

    async def start(self) -> None:
        """Client, adapters, then the dispatcher (which recovers and resumes tasks)."""
        import httpx

        self.updates.start()
        self.notes.start()
        self.write_plans.start()
        self.write_updates.start()
        self.progress.start()
        self._client = httpx.AsyncClient(
            timeout=PROBE_TIMEOUT, trust_env=False, follow_redirects=False,
        )  # fmt: skip
        if self._mark is not None:
            self._mark.take()
        loop = asyncio.get_running_loop()
        workers = await loop.run_in_executor(self._reads, self.registry.refresh)
        adapters = [w for w in workers if w.spec is not None and w.spec.adapter is not None]
        await asyncio.gather(*(self.adapters.start(w) for w in adapters))
        await self._start_disposables(workers)
        self.reload.begin()
        await self.dispatcher.start()
        await self.writeback.start()

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Drain the dispatcher, stop adapters (offline), close the client and the writer."""
        self.reload.stopping()
        left = await self.dispatcher.drain(drain_timeout, stop_node=False)
        if left:
            log.info("%d tasks were still in flight; they are sent again at the next start", left)
        await self.reload.close()
        await self.writeback.drain()
        await self.dispatcher.leases.stop()  # after the writes: their leases held till now
        await self.adapters.stop_all()
        if self._disposables is not None:
            await self._disposables.close()
        await self.updates.close()
        await self.notes.close()
        await self.write_plans.close()
        await self.write_updates.close()
        await self.progress.close()
        await self._pool.close()
        if self._client is not None:
            await self._client.aclose()
        if self._mark is not None:
            self._mark.release()

    def _probe_client(self) -> httpx.AsyncClient:
        assert self._client is not None
        return self._client

    def _pools(self, make: bool) -> Disposables | None:
        """The warm pools and disposable runs; made now if ``make`` (else None until used)."""
        return self._disposables_for() if make else self._disposables

    async def _send(self, target: Target, task: Task) -> TaskResult:
        from mecha.runtimes.endpoint import send_task

        async def send_to(endpoint: str, api_key: str) -> TaskResult:
            return await send_task(
                self._pool, endpoint, task_id=task.id, prompt=task.prompt,
                context=task.context, api_key=api_key, timeout=target.timeout,
            )  # fmt: skip

        if not target.disposable:
            return await send_to(target.endpoint, target.api_key)
        loaded = self.registry.workers.get(target.name)
        if loaded is None or loaded.spec is None:
            from mecha.runtimes.contract import WorkerFailure

            raise WorkerFailure(f"worker {target.name} is not loaded", transient=True)
        return await self._disposables_for().run(target.name, loaded.spec, send_to)

    def _disposables_for(self) -> Disposables:
        if self._disposables is None:
            from mecha.app.docker import disposables

            self._disposables = disposables(
                self.registry.home, lambda: self.secrets, database=self._database
            )
        return self._disposables

    async def _start_disposables(self, workers: Sequence[LoadedWorker]) -> None:
        """Sweep what a crash left behind, then fill the warm pools."""
        managed = [w for w in workers if w.spec is not None and w.spec.docker is not None]
        if not managed:
            return
        disposables = self._disposables_for()
        hosts = {w.spec.docker.host for w in managed if w.spec and w.spec.docker}
        swept = await disposables.sweep(hosts)
        if swept:
            log.info("removed %d disposable containers left by an earlier run", swept)
        for worker in managed:
            assert worker.spec is not None and worker.spec.docker is not None
            if worker.spec.docker.lifecycle == "disposable" and worker.spec.docker.pool:
                disposables.fill_soon(worker.name, worker.spec)

    async def _probe(self, target: Target) -> str:
        from mecha.runtimes.contract import Health
        from mecha.runtimes.endpoint import probe

        assert self._client is not None
        health = await probe(
            self._client, target.endpoint, timeout=PROBE_TIMEOUT, api_key=target.api_key
        )
        if health in (Health.OK, Health.BUSY):
            return ""
        return f"health check of {target.endpoint}: {health.value}"


def this_node() -> NodeRecord:
    """This process as a node of the database: ``<hostname>-<pid>-<4 hex>``."""
    host = socket.gethostname() or "localhost"
    pid = os.getpid()
    return NodeRecord(
        id=f"{host}-{pid}-{uuid.uuid4().hex[:4]}", host=host, pid=pid, version=__version__
    )


def _add_timeline(store: Store, entries: Sequence[TimelineEntry]) -> list[None]:
    store.add_timeline(entries)
    return [None] * len(entries)
