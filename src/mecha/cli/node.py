"""`mecha node`: the `mecha serve` processes (nodes) that share this database."""

from __future__ import annotations

import json
import time

import click

from mecha.cli.context import AppContext, pass_app
from mecha.cli.display import age
from mecha.cli.table import render_table


@click.group()
def node() -> None:
    """The `mecha serve` nodes of this database: alive, stale or stopped."""


@node.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def list_nodes(app: AppContext, as_json: bool) -> None:
    """Every node: host and pid, when it started, its last heartbeat, its state and the
    tasks it has in flight.

    A node is stale when its last heartbeat is older than the lease (MECHA_LEASE, 30s by
    default): other nodes take its tasks back once their leases end.
    """
    from mecha.app.serve import node_lease
    from mecha.config.settings import load_server_config

    lease = node_lease(load_server_config(app.settings, app.environ))
    nodes = app.store().list_nodes()
    now = time.time()
    if as_json:
        shown = [
            {"id": n.id, "host": n.host, "pid": n.pid, "version": n.version,
             "started_at": n.started_at, "heartbeat_at": n.heartbeat_at,
             "stopped_at": n.stopped_at, "heartbeat_age": round(max(0.0, now - n.heartbeat_at), 1),
             "state": n.state(now=now, lease=lease), "in_flight": n.in_flight}
            for n in nodes
        ]  # fmt: skip
        app.echo(json.dumps(shown, indent=2))
        return
    if not nodes:
        app.echo("no nodes yet: each `mecha serve` registers itself here when it starts")
        return
    rows = [
        [n.id, n.host, str(n.pid), age(n.started_at, now=now), age(n.heartbeat_at, now=now),
         n.state(now=now, lease=lease), str(n.in_flight)]
        for n in nodes
    ]  # fmt: skip
    app.echo(
        render_table(["NODE", "HOST", "PID", "STARTED", "HEARTBEAT", "STATE", "IN FLIGHT"], rows)
    )
