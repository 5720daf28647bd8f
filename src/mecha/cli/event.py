"""``mecha event``: ls, show, send (a signed test delivery to the running server), replay
(asks the running server), samples."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mecha.cli.context import AppContext, pass_app
from mecha.cli.display import ID_WIDTH, age, short, timeline_table, writes_table
from mecha.cli.table import render_table
from mecha.errors import MechaError
from mecha.event import Event, EventState, event_json, timestamp

STATES = click.Choice([s.value for s in EventState])


@click.group()
def event() -> None:
    """List and show stored events; send a signed test event (a file or a sample)."""


@event.command("ls")
@click.option("--state", type=STATES, help="Only events in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def list_events(app: AppContext, state: str | None, limit: int, as_json: bool) -> None:
    """Stored events, newest first."""
    events = app.store().list_events(state=EventState(state) if state else None, limit=limit)
    if as_json:
        app.echo(json.dumps([event_json(e) for e in events], indent=2))
        return
    if not events:
        app.echo(
            "no events yet (try `mecha event send --sample pull_request.opened`, or point a "
            "webhook here)"
        )
        return
    rows = [
        [e.id[:ID_WIDTH], e.source, e.type, e.subject, e.state.value, age(e.created_at)]
        for e in events
    ]
    app.echo(render_table(["ID", "SOURCE", "TYPE", "SUBJECT", "STATE", "AGE"], rows))


@event.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with raw body and headers).")
@pass_app
def show_event(app: AppContext, event_id: str, as_json: bool) -> None:
    """One event: attributes, each worker's decision and why, tasks, writes, timeline."""
    store = app.store()
    found = store.get_event(event_id)
    matches = store.list_matches(found.id)
    tasks = store.list_tasks(event_id=found.id)
    steps = store.list_timeline(event_id=found.id)
    writes = store.list_writes(event_id=found.id)
    if as_json:
        from mecha.server.models import event_detail_json  # the API's shape

        app.echo(json.dumps(event_detail_json(found, matches, tasks, steps, writes), indent=2))
        return
    app.echo(_describe(found))
    app.echo("\nworkers:")
    if not matches:
        app.echo("  (not matched yet)" if found.state is EventState.RECEIVED else "  (none)")
    for match in matches:
        made = f" → task {match.task_id[:ID_WIDTH]}" if match.task_id else ""
        app.echo(f"  {match.worker}: {match.outcome}{made}\n    {match.reason}")
    if tasks:
        app.echo("\ntasks:")
        from mecha.cli.task_show import state_text

        for task in tasks:
            app.echo(f"  {task.id[:ID_WIDTH]} {task.worker} {state_text(task)}")
    if writes:
        app.echo("\nwrite-back:")
        app.echo(writes_table(writes))
    if steps:
        app.echo("\ntimeline:")
        app.echo(timeline_table(steps))


def _describe(found: Event) -> str:
    lines = [
        f"event {found.id}",
        f"  source:   {found.source}",
        f"  type:     {found.type}",
        f"  delivery: {found.delivery_id}",
        f"  actor:    {found.actor}",
        f"  subject:  {found.subject}",
        f"  state:    {found.state.value}",
        f"  received: {timestamp(found.created_at)}",
    ]
    if found.attrs.get("replay_of"):
        by = found.attrs.get("replayed_by") or "someone"
        lines.append(f"  replay:   of event {found.attrs['replay_of']}, by {by}")
    if found.error:
        lines.append(f"  error:    {found.error}")
    lines.append("attributes:")
    for key in sorted(found.attrs):
        lines.append(f"  {key}: {short(found.attrs[key])}")
    return "\n".join(lines)


@event.command("send")
@click.argument(
    "payload", required=False, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option(
    "--sample",
    metavar="NAME",
    help="Send a sample shipped with Mecha instead of a file, e.g. pull_request.opened "
    "(`mecha event samples` lists them).",
)
@click.option(
    "--source",
    help="github, gitlab or a generic source's name. Default: github, or for --sample the "
    "forge that has it.",
)
@click.option(
    "--event",
    "event_type",
    help="The event header, e.g. pull_request, push, Note Hook (a sample sends its own).",
)
@click.option("--addr", help="Server host:port (config.yml addr:, else 127.0.0.1:21212).")
@click.option("--delivery-id", help="Delivery id to send (default: a new random one).")
@pass_app
def send(
    app: AppContext,
    *,
    payload: Path | None,
    sample: str | None,
    source: str | None,
    event_type: str | None,
    addr: str | None,
    delivery_id: str | None,
) -> None:
    """Sign PAYLOAD (or --sample NAME) with the configured secret and post it to the
    running server."""
    from mecha.cli import event_send

    sending = event_send.outgoing(payload, sample=sample, source=source, event_type=event_type)
    for warning in event_send.writeback_warnings(sending):
        app.warn(warning)
    status, answer = event_send.send(app, sending, addr=addr, delivery_id=delivery_id)
    app.echo(f"{status} {json.dumps(answer)}")
    if status >= 400:
        raise click.exceptions.Exit(1)
    if isinstance(answer, dict) and answer.get("id"):
        app.echo(f"see what happened: mecha event show {str(answer['id'])[:ID_WIDTH]}")


@event.command("replay")
@click.argument("event_id")
@click.option("--addr", help="Server host:port (config.yml addr:, else 127.0.0.1:21212).")
@pass_app
def replay(app: AppContext, event_id: str, addr: str | None) -> None:
    """Match EVENT_ID again against today's workers, as a new delivery marked as a replay.

    The running mecha serve does it (POST /event/ID/replay): its workers decide, its
    forge client fetches what they need, its dispatcher sends the tasks.
    """
    from mecha.cli import event_send

    found = app.store().get_event(event_id)  # a mistyped id is told here, by prefix too
    status, answer = event_send.post_action(
        app, f"/event/{found.id}/replay", by=app.who("mecha event replay"), addr=addr
    )
    if status != 202 or not isinstance(answer, dict):
        error = answer.get("error", answer) if isinstance(answer, dict) else answer
        hint = answer.get("hint", "") if isinstance(answer, dict) else ""
        raise MechaError(f"the server refused the replay ({status}): {error}", hint=hint)
    made = str(answer.get("id", ""))
    app.echo(f"replayed event {found.id} as event {made} (delivery {answer.get('delivery_id')})")
    app.echo(f"see what today's workers did: mecha event show {made[:ID_WIDTH]}")


@event.command("samples")
@pass_app
def list_samples(app: AppContext) -> None:
    """The recorded GitHub and GitLab deliveries `mecha event send --sample` can send."""
    from mecha.cli.event_send import sample_rows

    app.echo(render_table(["SOURCE", "SAMPLE", "EVENT HEADER", "ABOUT"], sample_rows()))
    app.echo("\nsend one: mecha event send --sample NAME [--source gitlab]")
