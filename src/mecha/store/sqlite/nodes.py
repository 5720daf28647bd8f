"""Nodes and leases in SQLite: the statements, given a connection (never commits).

One serve owns a SQLite file (the serve mark), so there is no race to take a task back;
the statements still follow the rules every store shares (``Store.take_back``).
"""

from __future__ import annotations

import sqlite3

from mecha.store import NodeRecord
from mecha.store.common import NODE_MEMORY, expired_detail
from mecha.store.flow_sql import end_marked
from mecha.store.sqlite.tasks import add_timeline, ended_flows
from mecha.timeline import Step, TimelineEntry

_NODE_COLUMNS = "id, host, pid, version, started_at, heartbeat_at, stopped_at"


def register_node(conn: sqlite3.Connection, node: NodeRecord, now: float) -> None:
    """Insert (or replace) the node, its heartbeat now; forget long-gone nodes."""
    conn.execute(
        "DELETE FROM nodes WHERE (stopped_at > 0 AND stopped_at < ?) OR heartbeat_at < ?",
        (now - NODE_MEMORY, now - NODE_MEMORY),
    )
    conn.execute(
        f"INSERT OR REPLACE INTO nodes ({_NODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0)",  # noqa: S608
        (node.id, node.host, node.pid, node.version, node.started_at or now, now),
    )


def heartbeat(conn: sqlite3.Connection, node_id: str, lease: float, now: float) -> int:
    """The node's heartbeat now; the leases of its running tasks and of the writes it calls
    renewed. How many task leases were renewed."""
    conn.execute("UPDATE nodes SET heartbeat_at = ? WHERE id = ?", (now, node_id))
    conn.execute(
        "UPDATE writes SET lease_until = ? WHERE node_id = ? AND state = 'calling'",
        (now + lease, node_id),
    )
    return conn.execute(
        "UPDATE tasks SET lease_until = ? WHERE node_id = ? AND state = 'running'",
        (now + lease, node_id),
    ).rowcount


def stop_node(conn: sqlite3.Connection, node_id: str, now: float) -> None:
    """The node stopped cleanly: the writes it left calling (a drain that gave up) may be
    taken up at once by the next claim, as uncertain."""
    conn.execute("UPDATE nodes SET stopped_at = ? WHERE id = ?", (now, node_id))
    conn.execute(
        "UPDATE writes SET lease_until = 0 WHERE node_id = ? AND state = 'calling'", (node_id,)
    )


def list_nodes(conn: sqlite3.Connection) -> list[NodeRecord]:
    """Every node, oldest start first, with its tasks in flight."""
    rows = conn.execute(
        f"SELECT {_NODE_COLUMNS}, (SELECT count(*) FROM tasks "  # noqa: S608
        "WHERE tasks.node_id = nodes.id AND tasks.state = 'running') "
        "FROM nodes ORDER BY started_at, id"
    ).fetchall()
    return [
        NodeRecord(id=i, host=h, pid=p, version=v, started_at=s, heartbeat_at=b, stopped_at=x,
                   in_flight=n)
        for i, h, p, v, s, b, x, n in rows
    ]  # fmt: skip


def take_back(
    conn: sqlite3.Connection, *, before: float, exclude_node: str, limit: int, now: float
) -> list[str]:
    """Running tasks whose lease ended before ``before`` back to pending (not those of
    ``exclude_node``), each with a timeline entry at ``now``; their ids, oldest first."""
    marked = "lease_until < ? AND (? = '' OR node_id <> ?)"
    ended = end_marked(conn, marked, (before, exclude_node, exclude_node), now, "?")
    ended_flows(conn, ended, now)
    rows = conn.execute(
        "SELECT id, event_id, worker, node_id FROM tasks WHERE state = 'running' "
        "AND lease_until < ? AND (? = '' OR node_id <> ?) ORDER BY created_at, rowid LIMIT ?",
        (before, exclude_node, exclude_node, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE tasks SET state = 'pending', next_retry_at = 0, updated_at = ? "
        "WHERE id = ? AND state = 'running'",
        [(now, row[0]) for row in rows],
    )
    add_timeline(
        conn,
        [TimelineEntry(at=now, step=Step.REQUEUED, event_id=e, task_id=t, worker=w,
                       detail=expired_detail(n)) for t, e, w, n in rows],
    )  # fmt: skip
    return [row[0] for row in rows]
