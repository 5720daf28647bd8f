"""``mecha worker``: add, remove, ls, show, validate, schema, start, stop."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mecha.cli.context import AppContext, pass_app
from mecha.cli.table import render_table
from mecha.errors import SecretsError, WorkerStateError
from mecha.store import WorkerRecord
from mecha.template.interpolation import expand
from mecha.worker.kind import WorkerKind, WorkerState

if TYPE_CHECKING:
    from mecha.secrets import Secrets
    from mecha.worker.parser import ParsedWorker

PATH = click.Path(path_type=Path)


@click.group()
def worker() -> None:
    """Add, remove, list, check, start and stop workers."""


@worker.command()
@click.argument("path", type=PATH)
@click.option("--replace", is_flag=True, help="Update workers already registered (after an edit).")
@pass_app
def add(app: AppContext, path: Path, replace: bool) -> None:
    """Register the worker file PATH, or every *.yml/*.yaml in folder PATH (all or none)."""
    from mecha.worker.files import to_record

    records = [to_record(w, source=p) for p, w in _read_checked(app, path)]
    store = app.store()
    known = {r.name for r in store.list_workers()} if replace else set()
    store.add_workers(records, replace=replace)
    for record in records:
        verb = "updated" if record.name in known else "added"
        app.echo(f"{verb} {record.name} ({record.kind.label})")


@worker.command()
@click.argument("path", type=PATH)
@pass_app
def validate(app: AppContext, path: Path) -> None:
    """Check the worker file PATH (or a folder of them) without registering anything."""
    for p, w in _read_checked(app, path):
        app.echo(f"ok {p}: {w.spec.name} ({w.spec.kind.label})")


@worker.command()
@click.argument("name")
@pass_app
def remove(app: AppContext, name: str) -> None:
    """Unregister worker NAME (a managed worker's container is removed first, a running
    serve stops an adapter; an unmanaged worker must be offline)."""
    store = app.store()
    record = store.get_worker(name)
    allowed = {WorkerState.OFFLINE} if record.kind is WorkerKind.UNMANAGED else set(WorkerState)
    if record.kind is WorkerKind.MANAGED:
        from mecha.cli.worker_managed import remove_container

        remove_container(app, record)
    store.remove_worker(name, allowed_states=allowed)
    app.echo(f"removed {name}")
    if record.kind is WorkerKind.ADAPTER:
        from mecha.cli.worker_lifecycle import adapter_removed

        adapter_removed(app, record)


@worker.command()
@click.argument("name")
@pass_app
def start(app: AppContext, name: str) -> None:
    """Start worker NAME: a managed worker's container, or check an unmanaged one's health."""
    from mecha.cli.worker_lifecycle import start_worker

    start_worker(app, name)


@worker.command()
@click.argument("name")
@pass_app
def stop(app: AppContext, name: str) -> None:
    """Stop worker NAME (a managed worker's container is removed); its tasks then wait."""
    from mecha.cli.worker_lifecycle import stop_worker

    stop_worker(app, name)


@worker.command()
@click.argument("name")
@click.option("--tail", default=100, show_default=True, help="Lines from the end to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@pass_app
def logs(app: AppContext, name: str, tail: int, follow: bool) -> None:
    """Show the container logs of managed worker NAME."""
    from mecha.cli.worker_managed import show_logs
    from mecha.errors import UsageError

    record = app.store().get_worker(name)
    if record.kind is not WorkerKind.MANAGED:
        raise UsageError(
            f"{name} is an {record.kind.value} worker; only managed workers have container logs",
            hint="an adapter logs into mecha serve's output; an unmanaged worker into its own",
        )
    show_logs(app, record, tail=tail, follow=follow)


@worker.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for scripts.")
@pass_app
def list_workers(app: AppContext, as_json: bool) -> None:
    """List workers: NAME TYPE STATE ENDPOINT HEALTH (running ones are probed at once)."""
    records = app.store().list_workers()
    endpoints = {r.name: _endpoint(app, r) for r in records}
    checked = _probe(app, records, endpoints)
    rows = [_row(*checked.get(r.name, ("-", r)), endpoints[r.name]) for r in records]
    if as_json:
        app.echo(json.dumps(rows, indent=2))
    elif not rows:
        from mecha.cli.display import NEXT_WORKER

        app.echo(f"no workers registered\n{NEXT_WORKER}")
    else:
        table = [
            [r["name"], r["type"], r["state"], r["endpoint"] or "-", r["health"]] for r in rows
        ]
        app.echo(render_table(["NAME", "TYPE", "STATE", "ENDPOINT", "HEALTH"], table))


@worker.command()
@click.argument("name")
@click.option("--limit", default=50, show_default=True, help="Most recent changes to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_app
def show(app: AppContext, name: str, limit: int, as_json: bool) -> None:
    """One worker: kind, state, file, and what serve did with each change of its definition."""
    from mecha.cli.display import timeline_table
    from mecha.event import timestamp

    store = app.store()
    record = store.get_worker(name)
    steps = store.list_timeline(worker=record.name, limit=limit)
    row = _row("-", record, _endpoint(app, record))
    if as_json:
        changes = [{"at": e.at, "step": e.step, "detail": e.detail} for e in steps]
        app.echo(json.dumps({**row, "changes": changes}, indent=2))
        return
    started = timestamp(record.started_at) if record.started_at else "-"
    for label, value in (
        ("name", record.name), ("type", row["type"]), ("state", row["state"]),
        ("endpoint", row["endpoint"] or "-"), ("error", record.error or "-"),
        ("file", record.source or "-"), ("added", timestamp(record.created_at)),
        ("started", started),
    ):  # fmt: skip
        app.echo(f"{label + ':':<10}{value}")
    if steps:
        app.echo(f"changes seen by mecha serve:\n{timeline_table(steps)}")
    else:
        app.echo("changes seen by mecha serve: none yet (a running serve records each one)")


@worker.command()
@pass_app
def schema(app: AppContext) -> None:
    """Print the JSON Schema of worker files (for yaml-language-server and editors)."""
    from mecha.worker.spec import WorkerSpec

    app.echo(json.dumps(WorkerSpec.model_json_schema(), indent=2))


def _read_checked(app: AppContext, path: Path) -> list[tuple[Path, ParsedWorker]]:
    """Every worker file at ``path``, checked (all mistakes at once), warnings printed."""
    from mecha.worker.files import read_workers, worker_paths

    paths = worker_paths(path)
    parsed = read_workers(
        paths, environ=app.environ, home=app.user_home, secrets_file=app.secrets_file
    )
    _report_warnings(app, parsed)
    return list(zip(paths, parsed, strict=True))


def _report_warnings(app: AppContext, parsed: list[ParsedWorker]) -> None:
    """Each file's warnings (literal keys, forge tokens, policy mistakes), then its tokens."""
    try:
        secrets: Secrets | None = app.secrets()
    except SecretsError as exc:
        app.warn(f"token references not checked: {exc}")
        secrets = None
    for w in parsed:
        for problem in w.warnings:
            app.warn(str(problem))
        if secrets is None:
            continue
        for section in (w.spec.docker, w.spec.adapter):
            if section is not None and section.token:
                try:
                    secrets.resolve(section.token)
                except SecretsError as exc:
                    app.warn(f"{w.spec.name}: token {section.token}: {exc}")


def _endpoint(app: AppContext, record: WorkerRecord) -> str:
    """Where tasks go: an unmanaged worker's definition (as the dispatcher reads it, so an
    endpoint replaced while it runs shows at once), else where its runtime answers."""
    written = str(record.definition.get("worker", {}).get("endpoint", ""))
    try:
        defined = expand(written, app.environ).rstrip("/")
    except ValueError:  # a variable this shell lacks: where `worker start` found it
        defined = ""
    if record.kind is WorkerKind.UNMANAGED and defined:
        return defined
    return record.endpoint or defined or written


def _probe(
    app: AppContext, records: list[WorkerRecord], endpoints: dict[str, str]
) -> dict[str, tuple[str, WorkerRecord]]:
    """Health of every running worker with an endpoint; a lost online worker becomes error."""
    running = [r for r in records if r.state is not WorkerState.OFFLINE and endpoints[r.name]]
    if not running:
        return {}
    import asyncio

    from mecha.app.health import probe_all
    from mecha.runtimes.contract import Health

    found = asyncio.run(probe_all([endpoints[r.name] for r in running]))
    health = {}
    for record, result in zip(running, found, strict=True):
        now = record
        if record.state is WorkerState.ONLINE and result is Health.UNREACHABLE:
            with contextlib.suppress(WorkerStateError):  # serve changed it meanwhile: theirs wins
                now = app.store().set_worker_state(
                    record.name,
                    WorkerState.ERROR,
                    error="health check failed",
                    only_from={WorkerState.ONLINE},
                )
        health[record.name] = (result.value, now)
    return health


def _row(health: str, record: WorkerRecord, endpoint: str) -> dict[str, Any]:
    if record.state is WorkerState.ERROR and health in ("-", "unreachable"):
        health = record.error or health
    return {
        "name": record.name,
        "type": record.kind.label,
        "state": record.state.value,
        "endpoint": endpoint,
        "health": health,
        "error": record.error,
        "source": record.source,
    }
