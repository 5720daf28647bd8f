"""Counting a worker's writes on one thread in PostgreSQL: ``WriteCountsMixin`` gives
PostgresStore ``count_writes`` (what ``policy.comment.max_per_hour`` is checked against).

The count reads the index ``writes_thread`` (target, worker, action, created_at) of
migration 11.
"""

from __future__ import annotations

from mecha.store.common import COUNTED_WRITE_STATES
from mecha.store.postgres.parts import PostgresParts

_COUNT = (
    "SELECT count(*) FROM writes WHERE target = %s AND worker = %s AND action = %s "
    "AND created_at >= %s AND key <> %s AND state = ANY(%s)"
)


class WriteCountsMixin(PostgresParts):
    """PostgresStore's ``count_writes``; the class provides ``_use``."""

    def count_writes(
        self, *, worker: str, action: str, target: str, since: float, exclude: str = ""
    ) -> int:
        """See Store.count_writes."""
        with self._use("counting writes") as conn:
            row = conn.execute(
                _COUNT, (target, worker, action, since, exclude, list(COUNTED_WRITE_STATES))
            ).fetchone()
            return int(row[0]) if row else 0
