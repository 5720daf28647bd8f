"""Starting and stopping a worker by hand while `mecha serve` runs, per kind
(``mecha.engine.operator.WorkerControl``; the dashboard and ``POST /worker/{name}/start``).

- **unmanaged** (``endpoint:``, a service the user runs): start = its ``GET /health`` must
  answer 200, then it is recorded online (a failed check records it in error and says
  why); stop = recorded offline, so its new tasks wait (a task it runs now finishes).
- **adapter**: start = serve starts its adapter as at its own start (not when one runs);
  stop = serve stops the adapter and records it offline (a send under way fails and is
  sent again once it is started). It stays stopped until started, a new definition
  (`worker add --replace`) or serve's next start.
- **managed, persistent**: start = its container is created and waited for until healthy,
  then recorded online; stop = the container is stopped and removed, recorded offline.
- **managed, disposable**: refused: each task gets a fresh container, there is nothing
  to start or stop.

Every refusal (wrong state, a kind that cannot, a definition that no longer loads) is
raised before anything changes. The worker is held in the dispatcher while it changes,
and the dispatcher reads it again afterwards, so its next task goes to what runs now.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from mecha.app.adapter_host import AdapterHost
from mecha.engine.dispatcher import Dispatcher
from mecha.engine.registry import LoadedWorker, WorkerRegistry
from mecha.errors import MechaError, WorkerStateError
from mecha.secrets import Secrets
from mecha.store import Store, WorkerRecord
from mecha.worker.kind import WorkerKind, WorkerState
from mecha.worker.spec import WorkerSpec

#: seconds an unmanaged worker's health check waits for an answer
START_TIMEOUT = 5.0
_RUNS = frozenset({WorkerState.ONLINE, WorkerState.BUSY})
STARTABLE = frozenset({WorkerState.OFFLINE, WorkerState.ERROR})
STOPPABLE = frozenset({WorkerState.ONLINE, WorkerState.BUSY, WorkerState.ERROR})


class ServeWorkers:
    """What serve does to start or stop each kind of worker by hand."""

    def __init__(
        self,
        *,
        store: Store,
        registry: WorkerRegistry,
        dispatcher: Dispatcher,
        adapters: AdapterHost,
        writer: Executor,
        reads: Executor,
        secrets: Callable[[], Secrets],
    ) -> None:
        self._store = store
        self._registry = registry
        self._dispatcher = dispatcher
        self._adapters = adapters
        self._writer = writer
        self._reads = reads
        self._secrets = secrets

    async def start(self, record: WorkerRecord) -> tuple[WorkerRecord, str]:
        """Start ``record``'s worker; the new record and what was done."""
        name = record.name
        spec = await self._usable(record, "start")
        assert spec is not None
        if record.kind is WorkerKind.ADAPTER and self._adapters.settings(name) is not None:
            raise WorkerStateError(
                f"worker {name}'s adapter runs already (it is {record.state.value})",
                hint=f"to start it afresh, stop it first (POST /worker/{name}/stop)",
            )
        if record.state in _RUNS:
            raise WorkerStateError(
                f"worker {name} is {record.state.value} already",
                hint=f"to start it afresh, stop it first (POST /worker/{name}/stop)",
            )
        hold = self._dispatcher.hold(name, "it is being started by hand")
        try:
            if record.kind is WorkerKind.UNMANAGED:
                done = await self._start_unmanaged(record, spec)
            elif record.kind is WorkerKind.ADAPTER:
                done = await self._start_adapter(name)
            else:
                done = await self._start_container(name, spec)
        finally:
            await self._dispatcher.release(name, hold)
        return await self._call(self._reads, self._store.get_worker, name), done

    async def stop(self, record: WorkerRecord) -> tuple[WorkerRecord, str]:
        """Stop ``record``'s worker; the new record and what was done."""
        name = record.name
        spec = await self._usable(record, "stop", loads=record.kind is WorkerKind.MANAGED)
        running = self._adapters.settings(name) is not None
        if record.state not in STOPPABLE and not running:
            raise WorkerStateError(
                f"worker {name} is {record.state.value} already",
                hint=f"its new tasks wait in its queue; to start it: POST /worker/{name}/start",
            )
        hold = self._dispatcher.hold(name, "it is being stopped by hand")
        try:
            if record.kind is WorkerKind.ADAPTER:
                await self._adapters.stop(name, state=WorkerState.OFFLINE)
                done = "adapter stopped"
            elif record.kind is WorkerKind.MANAGED:
                from mecha.app.docker import remove_container

                host = spec.docker.host if spec is not None and spec.docker else ""
                gone = await self._call(
                    None, remove_container, name, host=host, container_id=record.container_id
                )
                await self._state(name, WorkerState.OFFLINE, endpoint="", container_id="")
                done = "container stopped and removed" if gone else "it had no container"
            else:
                await self._state(name, WorkerState.OFFLINE, endpoint="", only_from=STOPPABLE)
                done = "recorded offline"
        finally:
            await self._dispatcher.release(name, hold)
        return await self._call(self._reads, self._store.get_worker, name), done

    async def _usable(
        self, record: WorkerRecord, doing: str, *, loads: bool = True
    ) -> WorkerSpec | None:
        """The worker's definition as serve has it now; refused if it cannot be used or
        its kind is not started or stopped this way. ``loads=False``: None is fine."""
        workers = await self._call(self._reads, self._registry.refresh)
        loaded: LoadedWorker | None = next((w for w in workers if w.name == record.name), None)
        spec = loaded.spec if loaded is not None else None
        if spec is None and loads:
            why = loaded.broken if loaded is not None else "it is not loaded"
            raise WorkerStateError(
                f"worker {record.name} cannot {doing}: its definition cannot be used: {why}",
                hint="fix its file and add it again: mecha worker add --replace "
                f"{record.source or 'FILE'}",
            )
        if spec is not None and spec.docker is not None and spec.docker.lifecycle == "disposable":
            raise WorkerStateError(
                f"worker {record.name} is disposable: each task gets a fresh container, so "
                f"there is nothing to {doing}",
                hint="to make its tasks wait, change its rules (or remove it); to run one "
                "long-lived container, set docker: lifecycle: persistent",
            )
        return spec

    async def _start_unmanaged(self, record: WorkerRecord, spec: WorkerSpec) -> str:
        from mecha.app.health import probe_all
        from mecha.runtimes.contract import Health

        url = spec.endpoint.rstrip("/")
        [health] = await probe_all([url], timeout=START_TIMEOUT)
        if health is not Health.OK:
            answer = _answer(health)
            await self._state(
                record.name, WorkerState.ERROR, error=f"health check failed: {answer}",
                endpoint="", only_from=STARTABLE,
            )  # fmt: skip
            raise MechaError(
                f"{record.name} is not started: GET {url}/health {answer}",
                hint=f"start the service at {url} (it must answer GET /health with 200) or "
                f"fix endpoint: in {record.source or 'its worker file'}, then start it again",
            )
        await self._state(record.name, WorkerState.ONLINE, endpoint=url, only_from=STARTABLE)
        return f"GET {url}/health answered 200: online"

    async def _start_adapter(self, name: str) -> str:
        loaded = self._registry.workers.get(name)
        assert loaded is not None  # _usable read it just now
        done = await self._adapters.start(loaded)
        if self._adapters.settings(name) is None:  # it did not start: say why
            record = await self._call(self._reads, self._store.get_worker, name)
            raise MechaError(
                f"{name}: {done}",
                hint=f"{record.error or 'see the server log'}; fix its file and add it again "
                "with --replace, or start it again",
            )
        return done

    async def _start_container(self, name: str, spec: WorkerSpec) -> str:
        from mecha.app.docker import start_container

        try:
            started = await self._call(
                None, start_container, name, spec, secrets=self._secrets(),
                home=self._registry.home,
            )  # fmt: skip
        except MechaError as exc:
            why = exc.message + (f" ({exc.hint})" if exc.hint else "")
            await self._state(name, WorkerState.ERROR, error=why, endpoint="", container_id="")
            raise
        await self._state(
            name, WorkerState.ONLINE, endpoint=started.endpoint, container_id=started.container_id
        )
        return f"container {started.name} healthy after {started.healthy_after:.1f}s"

    async def _state(self, name: str, state: WorkerState, **changes: Any) -> None:
        await self._call(self._writer, self._store.set_worker_state, name, state, **changes)

    async def _call(
        self, executor: Executor | None, call: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(call, *args, **kwargs))


def _answer(health: Any) -> str:
    from mecha.runtimes.contract import Health

    if health is Health.BUSY:
        return "answered 503 (busy or not ready)"
    if health is Health.UNHEALTHY:
        return "answered a status other than 200"
    return f"got no answer (connection refused, or nothing within {START_TIMEOUT:g}s)"
