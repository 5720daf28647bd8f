"""``mecha task``: ls, show, retry, cancel.

Retry and cancel are guarded state changes (``Store.update_tasks``): if `mecha serve`
moved the task first, nothing changes and the message says where the task is now.
A running server picks a retried task up within a second (it polls the store).
"""

from __future__ import annotations

import json
import time

import click

from mecha.cli.context import AppContext, pass_app
from mecha.cli.display import ID_WIDTH, age, excerpt, timeline_table, writes_table
from mecha.cli.table import render_table
from mecha.errors import TaskStateError, WorkerNotFound
from mecha.store import Store, TaskUpdate
from mecha.task import Task, TaskState, task_json
from mecha.timeline import Step
from mecha.worker.kind import WorkerState

STATES = click.Choice([s.value for s in TaskState])
RETRYABLE = frozenset({TaskState.FAILED, TaskState.CANCELLED})
CANCELLABLE = frozenset({TaskState.PENDING, TaskState.RUNNING})


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
    store = app.store()
    found = store.get_task(task_id)
    update = TaskUpdate(
        task_id=found.id, state=TaskState.PENDING, only_from=RETRYABLE, error="",
        reset_attempts=True, step=Step.REQUEUED, detail="by hand (mecha task retry)",
    )  # fmt: skip
    [done] = store.update_tasks([update])
    if done is None:
        raise _cannot_retry(store.get_task(found.id))
    app.echo(f"task {done.id} is pending again, attempts reset")
    waiting = _worker_note(store, done.worker)
    app.echo(waiting or "a running mecha serve sends it within a second")


@task.command()
@click.argument("task_id")
@pass_app
def cancel(app: AppContext, task_id: str) -> None:
    """Cancel a pending or running task."""
    store = app.store()
    found = store.get_task(task_id)
    update = TaskUpdate(
        task_id=found.id, state=TaskState.CANCELLED, only_from=CANCELLABLE,
        step=Step.CANCELLED, detail="by hand (mecha task cancel)",
    )  # fmt: skip
    [done] = store.update_tasks([update])
    if done is None:
        raise _cannot_cancel(store.get_task(found.id))
    app.echo(f"cancelled task {done.id} (it was {found.state.value})")
    if found.state is TaskState.RUNNING:
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


def _cannot_retry(now: Task) -> TaskStateError:
    if now.state is TaskState.PENDING:
        hint = "it waits to be sent; a running mecha serve sends it within a second"
    elif now.state is TaskState.RUNNING:
        hint = f"its worker has it now; wait for the end, or cancel it: mecha task cancel {now.id}"
    else:
        hint = "to run its prompt again, send it as a new task (POST /task)"
    return TaskStateError(
        f"task {now.id} is {now.state.value}; only failed or cancelled tasks can be retried",
        hint=hint,
    )


def _cannot_cancel(now: Task) -> TaskStateError:
    if now.state is TaskState.COMPLETED:
        hint = "it is done; there is nothing left to cancel"
    else:
        hint = f"nothing is running; to send it again: mecha task retry {now.id}"
    return TaskStateError(
        f"task {now.id} is already {now.state.value}; only pending or running tasks can "
        "be cancelled",
        hint=hint,
    )
