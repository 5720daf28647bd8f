"""Nodes and leases in memory, as ``mecha.store.sqlite.nodes`` keeps them."""

from __future__ import annotations

import dataclasses

from mecha.policy.writes import WriteState
from mecha.store import NodeRecord
from mecha.store.common import NODE_MEMORY, expired_detail
from mecha.task import TaskState
from mecha.testing.memory.flow import end_marked
from mecha.testing.memory.tables import NodeRow, Tables, TaskRow
from mecha.testing.memory.tasks import ended_flows
from mecha.timeline import Step, TimelineEntry


def register_node(tables: Tables, node: NodeRecord, now: float) -> None:
    """Insert (or replace) the node, its heartbeat now; forget long-gone nodes."""
    gone = now - NODE_MEMORY
    for row in list(tables.nodes.values()):
        if (row.stopped_at and row.stopped_at < gone) or row.heartbeat_at < gone:
            del tables.nodes[row.id]
    tables.nodes.pop(node.id, None)  # a replaced node goes to the end, as SQLite's REPLACE
    tables.nodes[node.id] = NodeRow(
        id=node.id, host=node.host, pid=node.pid, version=node.version,
        started_at=node.started_at or now, heartbeat_at=now,
    )  # fmt: skip


def heartbeat(tables: Tables, node_id: str, lease: float, now: float) -> int:
    """The node's heartbeat now; the leases of its running tasks and of the writes it calls
    renewed. How many task leases were renewed."""
    row = tables.nodes.get(node_id)
    if row is not None:
        tables.nodes[node_id] = dataclasses.replace(row, heartbeat_at=now)
    for write in list(tables.writes.values()):
        if write.node_id == node_id and write.state is WriteState.CALLING:
            tables.writes[write.key] = dataclasses.replace(write, lease_until=now + lease)
    renewed = 0
    for task in list(tables.tasks.values()):
        if task.node_id == node_id and task.state is TaskState.RUNNING:
            tables.tasks[task.id] = dataclasses.replace(task, lease_until=now + lease)
            renewed += 1
    return renewed


def stop_node(tables: Tables, node_id: str, now: float) -> None:
    """The node stopped cleanly; the writes it left calling may be taken up at once."""
    row = tables.nodes.get(node_id)
    if row is not None:
        tables.nodes[node_id] = dataclasses.replace(row, stopped_at=now)
    for write in list(tables.writes.values()):
        if write.node_id == node_id and write.state is WriteState.CALLING:
            tables.writes[write.key] = dataclasses.replace(write, lease_until=0.0)


def list_nodes(tables: Tables) -> list[NodeRecord]:
    """Every node, oldest start first, with its tasks in flight."""
    running: dict[str, int] = {}
    for task in tables.tasks.values():
        if task.state is TaskState.RUNNING:
            running[task.node_id] = running.get(task.node_id, 0) + 1
    rows = sorted(tables.nodes.values(), key=lambda row: (row.started_at, row.id))
    return [
        NodeRecord(id=r.id, host=r.host, pid=r.pid, version=r.version, started_at=r.started_at,
                   heartbeat_at=r.heartbeat_at, stopped_at=r.stopped_at,
                   in_flight=running.get(r.id, 0))
        for r in rows
    ]  # fmt: skip


def take_back(
    tables: Tables, *, before: float, exclude_node: str, limit: int, now: float
) -> list[str]:
    """Running tasks whose lease ended before ``before`` back to pending (not those of
    ``exclude_node``), each with a timeline entry at ``now``; their ids, oldest first."""
    ended_flows(
        tables, end_marked(tables, lambda row: _expired(row, before, exclude_node), now), now
    )
    expired = sorted(
        (row for row in tables.tasks.values()
         if row.state is TaskState.RUNNING and _expired(row, before, exclude_node)),
        key=lambda row: (row.created_at, row.seq),
    )[: max(limit, 0)]  # fmt: skip
    for row in expired:
        tables.tasks[row.id] = dataclasses.replace(
            row, state=TaskState.PENDING, next_retry_at=0.0, updated_at=now
        )
    tables.add_timeline(
        [TimelineEntry(at=now, step=Step.REQUEUED, event_id=r.event_id, task_id=r.id,
                       worker=r.worker, detail=expired_detail(r.node_id)) for r in expired],
    )  # fmt: skip
    return [row.id for row in expired]


def _expired(row: TaskRow, before: float, exclude_node: str) -> bool:
    """Whether a running task's lease ended before ``before`` (not one of ``exclude_node``)."""
    return row.lease_until < before and not (exclude_node and row.node_id == exclude_node)
