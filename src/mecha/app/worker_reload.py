"""Worker changes reach a running `mecha serve`: what serve does when the registry changes.

The registry reports each reload that added, replaced or removed workers
(``RegistryChange``, from whichever thread reloaded). For each such worker, on the
server's loop:

- an adapter whose settings changed is *held* at once (its queued tasks wait, saying
  why), its tasks in flight finish on the old adapter, then a new adapter replaces it and
  the held tasks go to the new one; a new adapter is started; a removed one is stopped;
- a persistent managed worker whose container runs and whose ``docker:`` section changed
  is held the same way and its container made again from the new definition;
- a disposable worker's warm pool is emptied of containers of the old definition and
  filled from the new one (emptied, when the worker is removed);
- unmanaged workers need nothing more: the dispatcher reads their new endpoint, key and
  timeout, for the next task.

Every added or changed worker is held from the moment the change is known until the
dispatcher has read its new definition (and, for a restart, until the new adapter or
container is up), so no task made after the change goes out under the old definition.

Each worker is handled by one job at a time; a change that arrives meanwhile is handled
after it, against the registry as it is then. Every change is logged and recorded as a
``definition`` timeline entry of the worker (no event, no task): it belongs to neither.
The dispatcher's ``dispatched`` entries name the definition each task was sent with.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from mecha.app.adapter_host import AdapterHost, adapter_settings
from mecha.engine.batcher import Batcher
from mecha.engine.dispatcher import Dispatcher
from mecha.engine.registry import LoadedWorker, RegistryChange, WorkerRegistry
from mecha.errors import MechaError, WorkerNotFound
from mecha.secrets import Secrets
from mecha.store import Store
from mecha.timeline import Step, TimelineEntry
from mecha.worker.kind import WorkerState
from mecha.worker.spec import DockerSpec, WorkerSpec

if TYPE_CHECKING:
    from mecha.runtimes.managed.pools import Disposables

log = logging.getLogger(__name__)
RESTARTING = "it is restarting with its new definition, after its tasks in flight"
APPLYING = "its new definition is being read"
_RUNS = frozenset({WorkerState.ONLINE, WorkerState.BUSY})


class WorkerReload:
    """Applies registry changes to what serve runs; ``begin`` after start, ``close`` at stop."""

    def __init__(
        self,
        *,
        registry: WorkerRegistry,
        dispatcher: Dispatcher,
        adapters: AdapterHost,
        disposables: Callable[[bool], Disposables | None],
        store: Store,
        writer: Executor,
        reads: Executor,
        secrets: Callable[[], Secrets],
        notes: Batcher[TimelineEntry, None],
    ) -> None:
        self._registry = registry
        self._dispatcher = dispatcher
        self._adapters = adapters
        #: the warm pools; made on first use when asked with True
        self._disposables = disposables
        self._store = store
        self._writer = writer
        self._reads = reads
        self._secrets = secrets
        self._notes = notes
        #: each worker as serve last set it up
        self._applied: dict[str, LoadedWorker] = {}
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        #: each worker's latest hold
        self._holds: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        #: adapters to restart although their definition is the same: their token changed
        self._tokens: set[str] = set()

    def begin(self) -> None:
        """From now on, act on every change the registry reports (call on the loop)."""
        self._loop = asyncio.get_running_loop()
        self._applied = dict(self._registry.workers)
        self._registry.on_change = self._from_any_thread

    async def close(self) -> None:
        """Start nothing new; wait for the jobs (the dispatcher's drain lets them end)."""
        self._closing = True
        self._registry.on_change = None
        await asyncio.gather(*self._jobs.values(), return_exceptions=True)

    def stopping(self) -> None:
        """Serve is stopping: jobs start no adapter or container from now on."""
        self._closing = True

    def _from_any_thread(self, change: RegistryChange) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: serve has stopped
                loop.call_soon_threadsafe(self.changed, change)

    def changed(self, change: RegistryChange) -> None:
        """Hold each added or changed worker at once; handle each change in its job.

        Called before the dispatcher can see a task made under the new definition (both
        come through the loop's queue, this first), so no task goes out under the old
        one: the job releases the worker once the dispatcher has read the new definition
        and, for a restart, once the new adapter or container is up.
        """
        if self._closing:
            return
        for name in (*change.added, *change.changed, *change.removed):
            new = change.after.get(name)
            have = self._adapters.settings(name)
            restarts = have is not None and have != adapter_settings(new)
            was = _persistent(self._applied.get(name))
            restarts = restarts or (was is not None and was != _persistent(new))
            if new is not None:
                why = RESTARTING if restarts else APPLYING
                self._holds[name] = self._dispatcher.hold(name, why)
            self._schedule(name)

    def secrets_reloaded(self) -> None:
        """secrets.yml was read again (SIGHUP): each running adapter whose ``token:`` now
        names another value is restarted with it, as for a new definition: held at once,
        its tasks in flight finished on the old key first (call on the loop)."""
        if self._closing:
            return
        for name in self._adapters.stale_tokens():
            self._tokens.add(name)
            self._holds[name] = self._dispatcher.hold(name, RESTARTING)
            self._schedule(name)

    def _schedule(self, name: str) -> None:
        if name in self._jobs:
            self._again.add(name)
        else:
            assert self._loop is not None
            job = self._loop.create_task(self._run(name), name=f"reload-{name}")
            self._jobs[name] = job

    async def _run(self, name: str) -> None:
        """Apply worker ``name``'s definition until no newer one came meanwhile; release it."""
        try:
            while True:
                self._again.discard(name)
                hold = self._holds.get(name, 0)
                try:
                    await self._apply(name)
                except Exception:
                    log.exception("worker %s: applying its new definition failed", name)
                if name in self._again and not self._closing:
                    continue  # changed again meanwhile: still held, by a newer hold
                await self._dispatcher.release(name, hold)
                if name not in self._again or self._closing:
                    return
        except MechaError as exc:
            log.error("worker %s: reading the workers failed: %s", name, exc)
        finally:
            self._jobs.pop(name, None)

    async def _apply(self, name: str) -> None:
        old = self._applied.get(name)
        new = self._registry.workers.get(name)
        token = name in self._tokens
        self._tokens.discard(name)
        same = old is new or (old is not None and new is not None and old.same_as(new))
        if same and not token:
            return
        done: list[str] = []
        try:
            done += await self._adapter(name, new, token=token and new is not None)
            done += await self._container(name, old, new)
            done += self._pool(name, old, new)
        finally:
            if new is None:
                self._applied.pop(name, None)
            else:
                self._applied[name] = new
        self._record(name, old, new, done, token_only=same)

    # --- adapters ---------------------------------------------------------------------

    async def _adapter(self, name: str, new: LoadedWorker | None, *, token: bool) -> list[str]:
        have, want = self._adapters.settings(name), adapter_settings(new)
        if have == want and not (token and want is not None):
            return []
        if have is not None:
            await self._dispatcher.settled(name)  # its tasks in flight finish on it
        if self._closing:
            return []
        if new is not None and want is not None:
            return [await self._adapters.start(new, verb="restarted" if have else "started")]
        if new is None:
            await self._adapters.stop(name, state=None)  # `worker remove` removed its record
        elif new.broken:
            why = f"its definition cannot be used: {new.broken}"
            await self._adapters.stop(name, state=WorkerState.ERROR, error=why)
        else:  # no longer an adapter: the new kind of worker starts offline
            await self._adapters.stop(name, state=WorkerState.OFFLINE)
        return ["adapter stopped"]

    # --- persistent containers --------------------------------------------------------

    async def _container(
        self, name: str, old: LoadedWorker | None, new: LoadedWorker | None
    ) -> list[str]:
        was, now = _persistent(old), _persistent(new)
        if was == now or new is None:  # removed: `worker remove` removed its container
            return []
        try:
            record = await self._call(self._reads, self._store.get_worker, name)
        except WorkerNotFound:
            return []
        if not record.container_id and record.state not in _RUNS:
            return [f"its container gets it at the next `mecha worker start {name}`"] if now else []
        await self._dispatcher.settled(name)
        if self._closing:
            return []
        if was is not None and (now is None or now.host != was.host):
            from mecha.app.docker import remove_container

            await self._call(
                None, remove_container, name, host=was.host, container_id=record.container_id
            )
        if now is None or new.spec is None:
            await self._container_state(name, WorkerState.OFFLINE)
            return ["its container was stopped and removed"]
        return [await self._restart_container(name, new.spec)]

    async def _restart_container(self, name: str, spec: WorkerSpec) -> str:
        """Make worker ``name``'s container again from ``spec`` (the old one is replaced)."""
        from mecha.app.docker import start_container

        try:
            started = await self._call(
                None, start_container, name, spec, secrets=self._secrets(),
                home=self._registry.home,
            )  # fmt: skip
        except MechaError as exc:
            why = exc.message + (f" ({exc.hint})" if exc.hint else "")
            log.error("worker %s: its container did not start again: %s", name, why)
            await self._container_state(name, WorkerState.ERROR, error=why)
            return "its container did not start again"
        await self._container_state(
            name, WorkerState.ONLINE, endpoint=started.endpoint, container_id=started.container_id
        )
        return "container restarted"

    async def _container_state(
        self, name: str, state: WorkerState, *, error: str = "", endpoint: str = "",
        container_id: str = "",
    ) -> None:  # fmt: skip
        try:
            await self._call(
                self._writer, self._store.set_worker_state, name, state, error=error,
                endpoint=endpoint, container_id=container_id,
            )  # fmt: skip
        except WorkerNotFound:
            return
        except MechaError as exc:
            log.error("worker %s: recording state %s failed: %s", name, state, exc)

    # --- warm pools -------------------------------------------------------------------

    def _pool(self, name: str, old: LoadedWorker | None, new: LoadedWorker | None) -> list[str]:
        spec = new.spec if new is not None else None
        docker = spec.docker if spec is not None else None
        if docker is None or docker.lifecycle != "disposable":
            spec = None
        size = docker.pool if spec is not None and docker is not None else 0
        disposables = self._disposables(size > 0)
        if disposables is None:
            return []
        emptied = disposables.reset(name, spec)
        done = [f"warm pool emptied of {_containers(emptied)}"] if emptied else []
        if size:
            which = "" if old is None else " of the new definition"
            done.append(f"warm pool filling with {_containers(size)}{which}")
        return done

    # --- saying so --------------------------------------------------------------------

    def _record(
        self,
        name: str,
        old: LoadedWorker | None,
        new: LoadedWorker | None,
        done: list[str],
        *,
        token_only: bool = False,
    ) -> None:
        if token_only and new is not None:
            what = f"its token changed (secrets.yml reloaded; {new.fingerprint})"
        elif old is None and new is not None:
            what = f"added ({new.fingerprint})"
        elif new is None and old is not None:
            what = f"removed ({old.fingerprint})"
        else:
            assert old is not None and new is not None
            what = f"definition changed ({old.fingerprint} → {new.fingerprint})"
        if new is not None and new.broken:
            done.insert(0, f"it cannot be used: {new.broken}")
        elif new is not None and not done:
            done.append("the next task uses it")
        # the log filter and the store redact it (the KnownSecrets every part shares)
        detail = "; ".join([what, *done])
        log.info("worker %s: %s", name, detail)
        entry = TimelineEntry(at=time.time(), step=Step.DEFINITION, worker=name, detail=detail)
        self._notes.put(entry)

    async def _call(self, executor: Executor | None, call: Callable[..., Any], /, *args: Any,
                    **kwargs: Any) -> Any:  # fmt: skip
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(call, *args, **kwargs))


def _containers(count: int) -> str:
    return f"{count} container" + ("" if count == 1 else "s")


def _persistent(worker: LoadedWorker | None) -> DockerSpec | None:
    """The ``docker:`` section of a persistent managed worker, else None."""
    spec = worker.spec if worker is not None else None
    docker = spec.docker if spec is not None else None
    return docker if docker is not None and docker.lifecycle == "persistent" else None
