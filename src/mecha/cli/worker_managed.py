"""`mecha worker start|stop|remove|logs` for managed (Docker) workers.

A persistent worker's container is created from its definition (checked again now, so
newer safety rules apply), started, and waited for until ``GET /health`` answers; then
the worker is recorded online with its endpoint and container id, and a running
`mecha serve` sends its waiting tasks. Stopping removes the container and records the
worker offline. A disposable worker needs no start: each task gets a fresh container.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mecha.cli.context import AppContext
from mecha.errors import MechaError
from mecha.store import WorkerRecord
from mecha.worker.kind import WorkerState

if TYPE_CHECKING:
    from mecha.worker.spec import WorkerSpec

STARTABLE = frozenset({WorkerState.OFFLINE, WorkerState.ONLINE, WorkerState.ERROR})


def start_managed(app: AppContext, record: WorkerRecord) -> None:
    """Create and start the worker's container, wait until it is healthy, record it online."""
    from mecha.app.docker import start_container

    spec = _spec(app, record)
    assert spec.docker is not None
    if spec.docker.lifecycle == "disposable":
        app.echo(f"{record.name} is disposable: each task gets a fresh container, no start needed")
        return
    store = app.store()
    try:
        started = start_container(record.name, spec, secrets=app.secrets(), home=app.user_home)
    except MechaError as exc:
        store.set_worker_state(
            record.name, WorkerState.ERROR, error=app.redact(exc.message), endpoint="",
            container_id="", only_from=STARTABLE | {WorkerState.BUSY},
        )  # fmt: skip
        raise
    store.set_worker_state(
        record.name, WorkerState.ONLINE, endpoint=started.endpoint,
        container_id=started.container_id, only_from=STARTABLE | {WorkerState.BUSY},
    )  # fmt: skip
    app.echo(
        f"started {record.name}: container {started.name} healthy after "
        f"{started.healthy_after:.1f}s at {started.endpoint}"
    )
    app.echo("a running mecha serve sends its waiting tasks within a second")


def stop_managed(app: AppContext, record: WorkerRecord) -> None:
    """Stop and remove the worker's container; record it offline."""
    gone = _remove_container(_spec(app, record), record)
    app.store().set_worker_state(record.name, WorkerState.OFFLINE, endpoint="", container_id="")
    what = "its container is stopped and removed" if gone else "it had no container"
    app.echo(f"stopped {record.name}: {what}; its new tasks wait until mecha worker start")


def remove_container(app: AppContext, record: WorkerRecord) -> None:
    """Before unregistering: stop and remove the worker's container, if it has one."""
    try:
        spec = _spec(app, record)
    except MechaError:
        return  # a definition that no longer loads: nothing to find by it
    if _remove_container(spec, record):
        app.echo(f"stopped and removed the container of {record.name}")


def show_logs(app: AppContext, record: WorkerRecord, *, tail: int, follow: bool) -> None:
    """Print the container's last ``tail`` log lines (and new ones, with ``follow``)."""
    from contextlib import closing

    from mecha.app.docker import container_logs, follow_container_logs

    spec = _spec(app, record)
    host, container_id = spec.docker.host if spec.docker else "", record.container_id
    if follow:
        following = follow_container_logs(
            record.name, host=host, container_id=container_id, tail=tail
        )
        with closing(following) as lines:  # the engine's connection closes on Ctrl-C too
            for line in lines:
                app.echo(app.redact(line))
    else:
        text = container_logs(record.name, host=host, container_id=container_id, tail=tail)
        app.echo(app.redact(text.rstrip("\n")))


def _remove_container(spec: WorkerSpec, record: WorkerRecord) -> bool:
    from mecha.app.docker import remove_container as remove_its_container

    host = spec.docker.host if spec.docker else ""
    return remove_its_container(record.name, host=host, container_id=record.container_id)


def _spec(app: AppContext, record: WorkerRecord) -> WorkerSpec:
    from mecha.worker.files import from_record

    spec = from_record(record, environ=app.environ, home=app.user_home).spec
    if spec.docker is None:
        raise MechaError(f"{record.name} is not a managed (docker:) worker")
    return spec
