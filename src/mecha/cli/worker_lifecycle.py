"""`mecha worker start` and `stop`: what each kind of worker allows, and the health check.

An unmanaged worker is a service the user runs: starting it means checking that it
answers ``GET /health`` with 200 and recording it online (a running `mecha serve` sends
its waiting tasks within a second); stopping it means recording it offline, so new tasks
wait. Adapter workers live inside `mecha serve`, which starts and stops them: with a serve
running on this database (its serve mark is held) `start` says where the adapter stands
and that serve picks up changes within seconds; without one it says to start serve.
Managed (Docker) workers are handled by ``worker_managed``.
"""

from __future__ import annotations

import asyncio

from mecha.cli.context import AppContext
from mecha.errors import MechaError, UsageError
from mecha.store import WorkerRecord
from mecha.worker.kind import WorkerKind, WorkerState

#: seconds the health check waits for an answer
START_TIMEOUT = 5.0
STARTABLE = frozenset({WorkerState.OFFLINE, WorkerState.ONLINE, WorkerState.ERROR})
STOPPABLE = frozenset({WorkerState.ONLINE, WorkerState.BUSY, WorkerState.ERROR})


def start_worker(app: AppContext, name: str) -> None:
    """Check an unmanaged worker's health and record it online (or error, and say why)."""
    store = app.store()
    record = store.get_worker(name)
    if record.kind is WorkerKind.MANAGED:
        from mecha.cli.worker_managed import start_managed

        start_managed(app, record)
        return
    if record.kind is WorkerKind.ADAPTER and _serve_pid(app) is not None:
        _adapter_in_serve(app, record)
        return
    _refuse_other_kinds(record, "start")
    if record.state is WorkerState.BUSY:
        app.echo(f"{name} is running already (busy with a task at {record.endpoint})")
        return
    url = _endpoint(app, record)
    answer = _health(url)
    if answer:
        store.set_worker_state(
            name, WorkerState.ERROR, error=f"health check failed: {answer}", endpoint="",
            only_from=STARTABLE,
        )  # fmt: skip
        raise MechaError(
            f"{name} is not started: GET {url}/health {answer}",
            hint=f"start the service at {url} (it must answer GET /health with 200) or fix "
            f"endpoint: in {record.source or 'its worker file'} and `mecha worker add --replace` "
            f"it, then run mecha worker start {name} again",
        )
    store.set_worker_state(name, WorkerState.ONLINE, endpoint=url, only_from=STARTABLE)
    if record.state is WorkerState.ONLINE:
        app.echo(f"{name} is already online at {url} (GET /health answered 200 just now)")
        return
    app.echo(f"started {name}: online at {url}")
    app.echo("a running mecha serve sends its waiting tasks within a second")


def stop_worker(app: AppContext, name: str) -> None:
    """Record an unmanaged worker offline; its tasks wait until it is started again."""
    store = app.store()
    record = store.get_worker(name)
    if record.kind is WorkerKind.MANAGED:
        from mecha.cli.worker_managed import stop_managed

        stop_managed(app, record)
        return
    if record.state is WorkerState.OFFLINE:
        app.echo(f"{name} is offline already")
        return
    _refuse_other_kinds(record, "stop")
    store.set_worker_state(name, WorkerState.OFFLINE, endpoint="", only_from=STOPPABLE)
    app.echo(f"stopped {name}: its new tasks wait in its queue until mecha worker start {name}")
    if record.state is WorkerState.BUSY:
        app.echo("the task it is running now is not interrupted")


def adapter_removed(app: AppContext, record: WorkerRecord) -> None:
    """After `worker remove` of an adapter: say whether a running serve stops it."""
    pid = _serve_pid(app)
    if pid is not None and record.state is not WorkerState.OFFLINE:
        app.echo(
            f"mecha serve{_pid_text(pid)} stops its adapter within a few seconds, once the "
            "tasks it is running now are answered"
        )


def _serve_pid(app: AppContext) -> int | None:
    from mecha.store.serve_mark import running_serve

    return running_serve(app.settings.db_path)


def _pid_text(pid: int) -> str:
    return f" (pid {pid})" if pid else ""


def _adapter_in_serve(app: AppContext, record: WorkerRecord) -> None:
    """`worker start` of an adapter while a serve runs: where it stands, nothing to do."""
    name, serve = record.name, f"mecha serve{_pid_text(_serve_pid(app) or 0)}"
    if record.state in (WorkerState.ONLINE, WorkerState.BUSY):
        app.echo(f"{name} is an adapter running inside {serve} at {record.endpoint}")
    elif record.state is WorkerState.ERROR and record.endpoint:
        app.echo(f"{name} is an adapter running inside {serve}, in error: {record.error}")
        app.echo("serve asks its model API again every few seconds and sends its tasks then")
    elif record.state is WorkerState.ERROR:
        app.echo(f"{name} is an adapter that {serve} could not start: {record.error}")
        app.echo("fix its file and add it again with --replace: serve then starts it")
    else:
        app.echo(
            f"{name} is an adapter: {serve} is running and starts it within a few seconds "
            "(adapters need no mecha worker start)"
        )
    app.echo(
        f"see its state with `mecha worker ls`; after editing its file, `mecha worker add "
        f"--replace {record.source or 'FILE'}` and serve restarts it with the new definition"
    )


def _refuse_other_kinds(record: WorkerRecord, doing: str) -> None:
    if record.kind is WorkerKind.ADAPTER:
        if doing == "start":
            raise UsageError(
                "adapter workers run inside `mecha serve`, which starts them itself",
                hint="start mecha serve: it starts every adapter worker, and any added "
                "later within seconds",
            )
        raise UsageError(
            f"{record.name} is an adapter worker, run by `mecha serve`",
            hint="it stops when mecha serve stops (Ctrl-C or SIGTERM)",
        )


def _endpoint(app: AppContext, record: WorkerRecord) -> str:
    """The worker's endpoint as it is now (``${VAR}`` substituted, the file checked again)."""
    from mecha.worker.files import from_record

    parsed = from_record(record, environ=app.environ, home=app.user_home)
    return parsed.spec.endpoint.rstrip("/")


def _health(url: str) -> str:
    """What ``GET url/health`` answered, when it was not 200 ("" when it was)."""
    from mecha.app.health import probe_all
    from mecha.runtimes.contract import Health

    [found] = asyncio.run(probe_all([url], timeout=START_TIMEOUT))
    if found is Health.OK:
        return ""
    if found is Health.BUSY:
        return "answered 503 (busy or not ready)"
    if found is Health.UNHEALTHY:
        return "answered a status other than 200"
    return f"got no answer (connection refused, no such host, or nothing within {START_TIMEOUT:g}s)"
