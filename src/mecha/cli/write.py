"""`mecha write`: the write-back ledger's failed writes, tried again by hand."""

from __future__ import annotations

import click

from mecha.cli.context import AppContext, pass_app
from mecha.cli.display import writes_table
from mecha.policy.writes import WriteState
from mecha.store import WriteUpdate
from mecha.timeline import Step

_GIVEN_UP = frozenset({WriteState.FAILED, WriteState.DEAD})


@click.group()
def write() -> None:
    """Try failed or dead-lettered writes to GitHub / GitLab again."""


@write.command()
@click.argument("event_id")
@pass_app
def retry(app: AppContext, event_id: str) -> None:
    """Try the failed and dead-lettered writes of EVENT_ID again (a running serve sends them).

    A write that was tried before is looked for on the forge first, so one that did
    reach it is not made twice. Writes that are done are never repeated.
    """
    store = app.store()
    event = store.get_event(event_id)
    stuck = [w for w in store.list_writes(event_id=event.id) if w.state in _GIVEN_UP]
    if not stuck:
        app.echo(f"event {event.id} has no failed or dead-lettered writes")
        return
    reopened = store.update_writes([
        WriteUpdate(key=w.key, state=WriteState.PLANNED, only_from=_GIVEN_UP, fresh_budget=True,
                    step=Step.WRITE_RETRY, detail=f"{w.write.action}: tried again by hand")
        for w in stuck
    ])  # fmt: skip
    done = [record for record in reopened if record is not None]
    app.echo(f"{len(done)} writes of event {event.id} will be tried again by `mecha serve`:")
    app.echo(writes_table(done))
