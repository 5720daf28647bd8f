"""The head a worker last reviewed on a pull request, in SQLite: ``ReviewsMixin`` gives
SqliteStore ``last_reviewed_head`` (incremental review: ``{{.diff_since_last}}``).

An event's ``number`` and ``head_sha`` attributes are columns too (migration 10), so the
events of one pull request are found through the index ``events_pull`` (source, subject,
number) and their tasks through ``tasks_event``: a few rows, and no JSON read.
"""

from __future__ import annotations

from mecha.store.sqlite.parts import SqliteParts

#: CROSS JOIN makes SQLite read the pull request's events first; left to itself, it may walk
#: every completed task of the worker (``tasks_worker_state``) and look up each one's event
LAST_REVIEWED = """
    SELECT e.head_sha
    FROM events AS e CROSS JOIN tasks AS t
    WHERE e.source = ? AND e.subject = ? AND e.number = ? AND e.head_sha != ''
      AND t.event_id = e.id AND t.worker = ? AND t.state = 'completed'
    ORDER BY t.finished_at DESC, t.rowid DESC
    LIMIT 1
"""


class ReviewsMixin(SqliteParts):
    """SqliteStore's ``last_reviewed_head``; the class provides ``_use``."""

    def last_reviewed_head(self, worker: str, *, source: str, repo: str, number: int) -> str:
        """See Store.last_reviewed_head."""
        with self._use(f"reading what {worker} last reviewed") as conn:
            row = conn.execute(LAST_REVIEWED, (source, repo, number, worker)).fetchone()
        return str(row[0]) if row else ""
