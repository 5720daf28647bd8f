"""The head a worker last reviewed on a pull request, in PostgreSQL: ``ReviewsMixin`` gives
PostgresStore ``last_reviewed_head`` (incremental review: ``{{.diff_since_last}}``).

As in SQLite, the ``number`` and ``head_sha`` columns (migration 10) find the pull
request's events through the index ``events_pull`` without reading JSON (which PostgreSQL
could not even do for attributes holding ``\\u0000``).
"""

from __future__ import annotations

from mecha.store.postgres.parts import PostgresParts

LAST_REVIEWED = """
    SELECT e.head_sha
    FROM events AS e JOIN tasks AS t ON t.event_id = e.id
    WHERE e.source = %s AND e.subject = %s AND e.number = %s AND e.head_sha <> ''
      AND t.worker = %s AND t.state = 'completed'
    ORDER BY t.finished_at DESC, t.seq DESC
    LIMIT 1
"""


class ReviewsMixin(PostgresParts):
    """PostgresStore's ``last_reviewed_head``; the class provides ``_use``."""

    def last_reviewed_head(self, worker: str, *, source: str, repo: str, number: int) -> str:
        """See Store.last_reviewed_head."""
        with self._use(f"reading what {worker} last reviewed") as conn:
            row = conn.execute(LAST_REVIEWED, (source, repo, number, worker)).fetchone()
        return str(row[0]) if row else ""
