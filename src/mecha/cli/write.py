"""`mecha write`: the write-back ledger's failed writes, tried again by hand."""

from __future__ import annotations

import click

from mecha.cli.context import AppContext, pass_app
from mecha.cli.display import writes_table
from mecha.errors import WriteStateError


@click.group()
def write() -> None:
    """Try failed or dead-lettered writes to GitHub / GitLab again."""


@write.command()
@click.argument("event_id")
@click.option("--key", default="", help="Only the write with this ledger key (see --json output).")
@pass_app
def retry(app: AppContext, event_id: str, key: str) -> None:
    """Try the failed and dead-lettered writes of EVENT_ID again (a running serve sends them).

    A write that was tried before is looked for on the forge first, so one that did
    reach it is not made twice. Writes that are done are never repeated.
    """
    from mecha.engine.operator import Operator

    store = app.store()
    event = store.get_event(event_id)
    try:
        done = Operator(store=store).retry_writes(
            event.id, who=app.who("mecha write retry"), key=key
        )
    except WriteStateError:
        if key:
            raise
        app.echo(f"event {event.id} has no failed or dead-lettered writes")
        return
    app.echo(f"{len(done)} writes of event {event.id} will be tried again by `mecha serve`:")
    app.echo(writes_table(done))
