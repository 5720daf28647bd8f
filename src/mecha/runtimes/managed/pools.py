"""Managed (Docker) workers: from a worker's definition to its container, and back.

``managed_spec`` resolves what a container needs from this host (the workspace, the
credential folders, the user to run as) and from secrets.yml (only the one token the
worker names; every other secret is withheld and checked not to leak).
``start_persistent`` and ``remove_persistent`` make and remove a persistent worker's
container (`mecha worker start/stop`, and serve when the worker's definition changes).
Each is given ``runtime_for``, which makes the ``DockerRuntime`` for an engine's host
(``mecha.app.docker`` passes its own); what it makes, the caller here closes.

``Disposables`` runs the tasks of ``lifecycle: disposable`` workers: each task gets a
fresh container, started, sent the task, then always stopped and removed (also on a
timeout, a crash of the worker, or a shutdown). With ``pool: N`` that many containers
are kept started and healthy ahead of time, so a task does not wait for one to start.
Each pooled container remembers the definition it was made from: after a change,
``reset`` empties the pool and fills it with the new one, and a container of an older
definition is never handed to a task. Leftovers of a crash carry the disposable label and
are swept at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from mecha.errors import MechaError
from mecha.result import TaskResult
from mecha.runtimes.contract import WorkerFailure
from mecha.runtimes.managed.container_spec import (
    ContainerSpec,
    container_spec,
    persistent_name,
    read_host,
)
from mecha.runtimes.managed.docker import DockerRuntime, ImageMissing, Started
from mecha.secrets import Secrets
from mecha.worker.spec import WorkerSpec

log = logging.getLogger(__name__)

#: sends a task to a started container: (endpoint, api key) → result
SendTo = Callable[[str, str], Awaitable[TaskResult]]
#: makes the runtime for an engine's host ("" = DOCKER_HOST / the socket)
RuntimeFor = Callable[[str], DockerRuntime]
#: a warm container and the definition it was started from
Pooled = tuple[WorkerSpec, Started]
#: after a pool container fails to start, the next try waits this long, doubled each
#: failure up to POOL_RETRY_MAX (a transient failure must not leave the pool empty)
POOL_RETRY_FIRST = 2.0
POOL_RETRY_MAX = 120.0


def managed_spec(
    name: str,
    spec: WorkerSpec,
    *,
    secrets: Secrets,
    home: Path,
    disposable_id: str = "",
    owner: str = "",
) -> ContainerSpec:
    """The container for worker ``name`` on this host; a MechaError saying what to fix."""
    docker = spec.docker
    if docker is None:
        raise MechaError(f"worker {name} is not a managed (docker:) worker")
    token = secrets.resolve(docker.token) if docker.token else None
    host = read_host(docker, home=home, uid=os.getuid(), gid=os.getgid())
    return container_spec(
        name, docker, token_value=token, api_key=docker.api_key, host=host,
        disposable_id=disposable_id, withheld=secrets.values(), owner=owner,
    )  # fmt: skip


def start_persistent(
    name: str, spec: WorkerSpec, *, secrets: Secrets, home: Path, runtime_for: RuntimeFor
) -> Started:
    """Create worker ``name``'s container (replacing one of that name), wait until healthy.

    Blocking. A MechaError says why it did not start (the container is then removed).
    """
    runtime = runtime_for(spec.docker.host if spec.docker else "")
    try:
        return runtime.start(managed_spec(name, spec, secrets=secrets, home=home))
    finally:
        runtime.close()


def remove_persistent(
    name: str, *, host: str, runtime_for: RuntimeFor, container_id: str = ""
) -> bool:
    """Stop and remove worker ``name``'s container; False if it had none. Blocking."""
    runtime = runtime_for(host)
    found = False
    try:
        for which in {container_id, persistent_name(name)} - {""}:
            found = runtime.stop(which, timeout=5) or found
            found = runtime.remove(which) or found
    finally:
        runtime.close()
    return found


class Disposables:
    """Fresh containers per task for disposable workers, with optional warm pools.

    ``runtime_for`` makes the runtime of each engine used (once per host, closed by
    ``close``); `mecha serve` passes ``mecha.app.docker``'s. Left out, it is a
    ``DockerRuntime`` with its defaults (scripts and tests that build one by hand).
    """

    def __init__(
        self,
        *,
        home: Path,
        secrets: Callable[[], Secrets],
        owner: str = "",
        threads: int = 8,
        runtime_for: RuntimeFor = DockerRuntime,
    ) -> None:
        self._home = home
        self._runtime_for = runtime_for
        #: this Mecha's ``mecha.owner`` label: its containers, and the only ones it sweeps
        self._owner = owner
        self._secrets = secrets
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="mecha-docker")
        self._runtimes: dict[str, DockerRuntime] = {}
        self._pools: dict[str, deque[Pooled]] = {}
        #: the definition each worker's pool is (being) filled with
        self._wanted: dict[str, WorkerSpec] = {}
        #: pool containers being started now, by worker
        self._starting: Counter[str] = Counter()
        #: the engine each worker's containers run on ("" = DOCKER_HOST / the socket)
        self._hosts: dict[str, str] = {}
        self._cleanups: set[Future[None]] = set()
        self._fills: set[asyncio.Task[None]] = set()
        #: how long the next pool start waits after failures, by worker
        self._backoff: dict[str, float] = {}
        self._closing = False
        self._closed = asyncio.Event()

    async def run(self, name: str, spec: WorkerSpec, send: SendTo) -> TaskResult:
        """Start (or take from the pool) a container, send it the task, then remove it."""
        started = self._take(name, spec) or await self._start(name, spec)
        api_key = spec.docker.api_key if spec.docker else ""
        try:
            return await send(started.endpoint, api_key)
        finally:
            self._discard(spec, started)
            self._refill(name)

    async def fill(self, name: str, spec: WorkerSpec) -> None:
        """Bring worker ``name``'s warm pool up to its ``pool`` size, from ``spec``."""
        self._wanted[name] = spec
        size = spec.docker.pool if spec.docker else 0
        pool = self._pools.setdefault(name, deque())
        while len(pool) + self._starting[name] < size and self._wanted.get(name) == spec:
            if self._closing:
                return
            self._starting[name] += 1
            try:
                started = await self._start(name, spec)
            except WorkerFailure as failure:
                log.error("worker %s: a pool container did not start: %s", name, failure.message)
                if failure.transient:
                    self._retry_later(name, spec)
                return
            finally:
                self._starting[name] -= 1
            self._backoff.pop(name, None)
            if self._wanted.get(name) != spec:  # the definition changed meanwhile
                self._discard(spec, started)
                return
            pool.append((spec, started))

    def reset(self, name: str, spec: WorkerSpec | None) -> int:
        """Worker ``name``'s definition is now ``spec`` (None: removed, or not disposable).

        Pooled containers of another definition are removed; the pool is filled again from
        ``spec`` in the background. Returns how many containers were removed.
        """
        self._backoff.pop(name, None)  # a new definition gets a fresh start
        pool = self._pools.setdefault(name, deque())
        stale = [entry for entry in pool if entry[0] != spec]
        kept = [entry for entry in pool if entry[0] == spec]
        pool.clear()
        pool.extend(kept)
        for made_from, started in stale:
            self._discard(made_from, started)
        if spec is not None and spec.docker is not None and spec.docker.pool:
            self.fill_soon(name, spec)
        else:
            self._wanted.pop(name, None)
        return len(stale)

    async def sweep(self, hosts: set[str]) -> int:
        """Remove disposable containers a crash left behind on these engines."""
        loop = asyncio.get_running_loop()
        swept = 0
        for host in hosts:
            try:
                runtime = self._runtime(host)
                swept += await loop.run_in_executor(
                    self._threads, runtime.sweep_disposable, self._owner
                )
            except MechaError as exc:
                where = host or "the default engine"
                log.warning("disposable containers not swept on %s: %s", where, exc)
        return swept

    async def close(self) -> None:
        """Remove the pools' containers and wait for every removal in progress."""
        self._closing = True
        self._closed.set()
        # a fill stops after the start in progress (not cancelled: its container would be lost)
        await asyncio.gather(*self._fills, return_exceptions=True)
        for name, pool in self._pools.items():
            while pool:
                _, started = pool.popleft()
                host = self._hosts.get(name, "")
                self._cleanups.add(self._threads.submit(self._remove_quietly, host, started))
        await asyncio.get_running_loop().run_in_executor(None, self._threads.shutdown, True)
        for runtime in self._runtimes.values():
            runtime.close()

    # --- containers -------------------------------------------------------------------

    async def _start(self, name: str, spec: WorkerSpec) -> Started:
        loop = asyncio.get_running_loop()
        try:
            built = managed_spec(
                name, spec, secrets=self._secrets(), home=self._home, owner=self._owner
            )
            host = spec.docker.host if spec.docker else ""
            self._hosts[name] = host
            runtime = self._runtime(host)
            # a worker is not waited for longer to start than to answer a task
            deadline = min(runtime.health_deadline, spec.timeout_seconds)
            start = functools.partial(runtime.start, built, deadline=deadline)
            return await loop.run_in_executor(self._threads, start)
        except ImageMissing as exc:
            raise WorkerFailure(f"{exc.message} ({exc.hint})", transient=False) from None
        except MechaError as exc:
            text = exc.message + (f" ({exc.hint})" if exc.hint else "")
            raise WorkerFailure(f"its container did not start: {text}", transient=True) from None

    def _take(self, name: str, spec: WorkerSpec) -> Started | None:
        """A warm container made from ``spec``; older ones met on the way are removed."""
        pool = self._pools.get(name)
        while pool:
            made_from, started = pool.popleft()
            if made_from == spec:
                return started
            self._discard(made_from, started)
        return None

    def ready(self, name: str) -> int:
        """How many started, healthy containers worker ``name``'s pool holds now."""
        return len(self._pools.get(name, ()))

    def fill_soon(self, name: str, spec: WorkerSpec) -> None:
        """Fill worker ``name``'s warm pool from ``spec`` in the background."""
        self._wanted[name] = spec
        job = asyncio.get_running_loop().create_task(self.fill(name, spec))
        self._fills.add(job)
        job.add_done_callback(self._fills.discard)

    def _retry_later(self, name: str, spec: WorkerSpec) -> None:
        """Fill worker ``name``'s pool again after a growing wait (unless closed or changed)."""
        wait = self._backoff.get(name, POOL_RETRY_FIRST)
        self._backoff[name] = min(wait * 2, POOL_RETRY_MAX)
        log.info("worker %s: the pool tries again in %.0f s", name, wait)

        async def later() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), wait)
            if not self._closing and self._wanted.get(name) == spec:
                await self.fill(name, spec)

        job = asyncio.get_running_loop().create_task(later())
        self._fills.add(job)
        job.add_done_callback(self._fills.discard)

    def _refill(self, name: str) -> None:
        spec = self._wanted.get(name)
        if spec is not None and spec.docker and spec.docker.pool and not self._closing:
            self.fill_soon(name, spec)

    def _discard(self, spec: WorkerSpec, started: Started) -> None:
        """Stop and remove ``started`` in a thread: it happens even if the caller is cancelled."""
        host = spec.docker.host if spec.docker else ""
        future = self._threads.submit(self._remove_quietly, host, started)
        self._cleanups.add(future)
        future.add_done_callback(self._cleanups.discard)

    def _remove_quietly(self, host: str, started: Started) -> None:
        runtime = self._runtime(host)
        try:
            runtime.stop(started.container_id, timeout=5)
            runtime.remove(started.container_id)
        except MechaError as exc:
            log.warning("disposable container %s not removed: %s", started.name, exc)

    def _runtime(self, host: str) -> DockerRuntime:
        if host not in self._runtimes:
            self._runtimes[host] = self._runtime_for(host)
        return self._runtimes[host]
