"""``mecha task``: ls, show, retry, cancel.

Retry and cancel are the operator's (``mecha.engine.operator``), as the dashboard's and the
API's are: guarded state changes, so if `mecha serve` moved the task first, nothing changes
and the message says where the task is now. The timeline records who: ``by hand: alice
(mecha task retry)``.
A running server picks a retried task up within a second (it polls the store).
"""

from __future__ import annotations

import json
import time

import click

from mecha.cli.context import AppContext, pass_app
from mecha.cli.display import ID_WIDTH, age, excerpt, timeline_table, writes_table
from mecha.cli.table import render_table
from mecha.errors import WorkerNotFound
from mecha.store import Store
from mecha.task import TaskState, task_json
from mecha.worker.kind import WorkerState

STATES = click.Choice([s.value for s in TaskState])


@click.group()
def task() -> None:
    """List, show, retry and cancel tasks."""


@task.command("ls")
@click.option("--state", type=STATES, help="Only tasks in this state.")
@click.option("--worker", help="Only tasks for this worker.")
@click.option("--event", "event_id", help="Only tasks of this event (id or 6+ character prefix).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def list_tasks(
    app: AppContext,
    *,
    state: str | None,
    worker: str | None,
    event_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Stored tasks, newest first."""
    store = app.store()
    event = store.get_event(event_id).id if event_id else None
    tasks = store.list_tasks(
        state=TaskState(state) if state else None, worker=worker, event_id=event, limit=limit
    )
    if as_json:
        app.echo(json.dumps([task_json(t) for t in tasks], indent=2))
        return
    if not tasks:
        filtered = state or worker or event_id
        app.echo(
            "no tasks match"
            if filtered
            else "no tasks yet (matched events make them, and POST /task on mecha serve)"
        )
        return
    from mecha.cli.task_show import state_text

    now = time.time()
    rows = [
        [
            t.id[:ID_WIDTH],
            t.worker,
            state_text(t, now=now),
            str(t.attempts),
            t.event_id[:ID_WIDTH] or "-",
            age(t.created_at),
            excerpt(t.error, 50),
        ]
        for t in tasks
    ]
    headers = ["ID", "WORKER", "STATE", "ATTEMPTS", "EVENT", "AGE", "ERROR"]
    app.echo(render_table(headers, rows))


@task.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the timeline).")
@pass_app
def show_task(app: AppContext, task_id: str, as_json: bool) -> None:
    """One task: its fields, prompt, result, error, write-back and timeline."""
    from mecha.cli.task_show import describe_task

    store = app.store()
    found = store.get_task(task_id)
    steps = store.list_timeline(task_id=found.id)
    writes = store.list_writes(task_id=found.id)
    if as_json:
        from mecha.server.models import task_detail_json  # the API's shape

        app.echo(json.dumps(task_detail_json(found, steps, writes), indent=2))
        return
    app.echo(describe_task(found))
    if writes:
        app.echo("write-back:")
        app.echo(writes_table(writes))
    if steps:
        app.echo("timeline:")
        app.echo(timeline_table(steps))


@task.command()
@click.argument("task_id")
@pass_app
def retry(app: AppContext, task_id: str) -> None:
    """Send a failed or cancelled task again, with its attempts reset."""
    from mecha.engine.operator import Operator

    store = app.store()
    done = Operator(store=store).retry_task(task_id, who=app.who("mecha task retry"))
    app.echo(f"task {done.id} is pending again, attempts reset")
    waiting = _worker_note(store, done.worker)
    app.echo(waiting or "a running mecha serve sends it within a second")


@task.command()
@click.argument("task_id")
@pass_app
def cancel(app: AppContext, task_id: str) -> None:
    """Cancel a pending or running task."""
    from mecha.engine.operator import Operator

    store = app.store()
    was = store.get_task(task_id).state
    done = Operator(store=store).cancel_task(task_id, who=app.who("mecha task cancel"))
    app.echo(f"cancelled task {done.id} (it was {was.value})")
    if was is TaskState.RUNNING:
        app.echo(
            "a running mecha serve abandons the send under way within a second (it closes "
            "the connection to the worker); whatever the worker answers is not recorded"
        )


def _worker_note(store: Store, name: str) -> str:
    """Why the task will not go out at once, if its worker cannot take it ("" if it can)."""
    try:
        worker = store.get_worker(name)
    except WorkerNotFound:
        return (
            f'worker "{name}" is no longer registered: the task cannot be sent until it '
            "is added again (mecha worker add FILE)"
        )
    if worker.state is WorkerState.OFFLINE:
        return f'worker "{name}" is offline: the task waits until mecha worker start {name}'
    return ""
