"""Nodes and leases in PostgreSQL: the statements, given a connection (never commits).

Several nodes share one database: a node renews its own leases with its heartbeat, and
every node sweeps for leases that ended. The sweep locks the rows it takes with
``FOR UPDATE SKIP LOCKED``: two nodes sweeping at once take disjoint tasks, and a task a
claim or a completion holds is left for the next sweep.
"""

from __future__ import annotations

from mecha.store import NodeRecord
from mecha.store.common import NODE_MEMORY, expired_detail
from mecha.store.flow_sql import end_marked
from mecha.store.postgres.parts import Conn
from mecha.store.postgres.tasks import add_timeline, ended_flows, notify_tasks
from mecha.timeline import Step, TimelineEntry

_NODE_COLUMNS = "id, host, pid, version, started_at, heartbeat_at, stopped_at"


def register_node(conn: Conn, node: NodeRecord, now: float) -> None:
    """Insert (or replace) the node, its heartbeat now; forget long-gone nodes."""
    conn.execute(
        "DELETE FROM nodes WHERE (stopped_at > 0 AND stopped_at < %s) OR heartbeat_at < %s",
        (now - NODE_MEMORY, now - NODE_MEMORY),
    )
    conn.execute(
        f"INSERT INTO nodes ({_NODE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, 0) "  # noqa: S608
        "ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
        "version = excluded.version, started_at = excluded.started_at, "
        "heartbeat_at = excluded.heartbeat_at, stopped_at = 0",
        (node.id, node.host, node.pid, node.version, node.started_at or now, now),
    )


def heartbeat(conn: Conn, node_id: str, lease: float, now: float) -> int:
    """The node's heartbeat now; the leases of its running tasks and of the writes it calls
    renewed. How many task leases were renewed."""
    conn.execute("UPDATE nodes SET heartbeat_at = %s WHERE id = %s", (now, node_id))
    conn.execute(
        "UPDATE writes SET lease_until = %s WHERE node_id = %s AND state = 'calling'",
        (now + lease, node_id),
    )
    renewed = conn.execute(
        "UPDATE tasks SET lease_until = %s WHERE node_id = %s AND state = 'running' RETURNING id",
        (now + lease, node_id),
    ).fetchall()
    return len(renewed)


def stop_node(conn: Conn, node_id: str, now: float) -> None:
    """The node stopped cleanly: the writes it left calling (a drain that gave up) may be
    taken up at once by the next claim, as uncertain."""
    conn.execute("UPDATE nodes SET stopped_at = %s WHERE id = %s", (now, node_id))
    conn.execute(
        "UPDATE writes SET lease_until = 0 WHERE node_id = %s AND state = 'calling'", (node_id,)
    )


def list_nodes(conn: Conn) -> list[NodeRecord]:
    """Every node, oldest start first, with its tasks in flight."""
    rows = conn.execute(
        f"SELECT {_NODE_COLUMNS}, (SELECT count(*) FROM tasks "  # noqa: S608
        "WHERE tasks.node_id = nodes.id AND tasks.state = 'running') "
        "FROM nodes ORDER BY started_at, id"
    ).fetchall()
    return [
        NodeRecord(id=i, host=h, pid=p, version=v, started_at=s, heartbeat_at=b, stopped_at=x,
                   in_flight=int(n))
        for i, h, p, v, s, b, x, n in rows
    ]  # fmt: skip


def take_back(conn: Conn, *, before: float, exclude_node: str, limit: int, now: float) -> list[str]:
    """Running tasks whose lease ended before ``before`` back to pending (not those of
    ``exclude_node``; none another sweep holds), each with a timeline entry at ``now``;
    their ids, oldest first."""
    marked = "lease_until < ? AND (? = '' OR node_id <> ?)"
    ended_flows(
        conn, end_marked(conn, marked, (before, exclude_node, exclude_node), now, "%s"), now
    )
    # the CTE is run once (a subquery in IN may be run again for each row, each time
    # taking up to ``limit`` more)
    rows = conn.execute(
        "WITH expired AS MATERIALIZED (SELECT id FROM tasks WHERE state = 'running' "
        "AND lease_until < %s AND (%s = '' OR node_id <> %s) ORDER BY created_at, seq "
        "LIMIT %s FOR UPDATE SKIP LOCKED) "
        "UPDATE tasks SET state = 'pending', next_retry_at = 0, updated_at = %s "
        "FROM expired WHERE tasks.id = expired.id AND tasks.state = 'running' "
        "RETURNING tasks.id, event_id, worker, node_id, created_at, seq",
        (before, exclude_node, exclude_node, limit, now),
    ).fetchall()
    rows.sort(key=lambda row: (row[4], row[5]))  # RETURNING has no order
    if rows:
        notify_tasks(conn)
    add_timeline(
        conn,
        [TimelineEntry(at=now, step=Step.REQUEUED, event_id=e, task_id=t, worker=w,
                       detail=expired_detail(n)) for t, e, w, n, _, _ in rows],
    )  # fmt: skip
    return [row[0] for row in rows]
