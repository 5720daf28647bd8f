"""Counting a worker's writes on one thread in memory, as ``mecha.store.sqlite.write_counts``
does (what ``policy.comment.max_per_hour`` is checked against)."""

from __future__ import annotations

from mecha.store.common import COUNTED_WRITE_STATES
from mecha.testing.memory.tables import Tables


def count_writes(
    tables: Tables, *, worker: str, action: str, target: str, since: float, exclude: str
) -> int:
    """See Store.count_writes."""
    return sum(
        1
        for row in tables.writes.values()
        if (row.target, row.worker, row.action) == (target, worker, action)
        and row.created_at >= since
        and row.key != exclude
        and row.state.value in COUNTED_WRITE_STATES
    )
