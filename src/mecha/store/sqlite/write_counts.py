"""Counting a worker's writes on one thread in SQLite: ``WriteCountsMixin`` gives SqliteStore
``count_writes`` (what ``policy.comment.max_per_hour`` is checked against).

The count reads the index ``writes_thread`` (target, worker, action, created_at) of
migration 11, so it costs a few index pages however long the ledger is.
"""

from __future__ import annotations

from mecha.store.common import COUNTED_WRITE_STATES
from mecha.store.sqlite.parts import SqliteParts

_COUNT = (
    "SELECT count(*) FROM writes WHERE target = ? AND worker = ? AND action = ? "
    "AND created_at >= ? AND key <> ? AND state IN (?, ?, ?)"
)


class WriteCountsMixin(SqliteParts):
    """SqliteStore's ``count_writes``; the class provides ``_use``."""

    def count_writes(
        self, *, worker: str, action: str, target: str, since: float, exclude: str = ""
    ) -> int:
        """See Store.count_writes."""
        with self._use("counting writes") as conn:
            row = conn.execute(
                _COUNT, (target, worker, action, since, exclude, *COUNTED_WRITE_STATES)
            ).fetchone()
            return int(row[0])
