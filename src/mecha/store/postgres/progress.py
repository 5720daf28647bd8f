"""Running tasks' progress in PostgreSQL: ``ProgressMixin`` gives PostgresStore
``set_task_tokens``, committed unsynced (``synchronous_commit = off``) as SQLite's is."""

from __future__ import annotations

from collections.abc import Sequence

from mecha.store.postgres.parts import PostgresParts


class ProgressMixin(PostgresParts):
    """PostgresStore's progress method; the class provides ``_write``."""

    def set_task_tokens(self, counts: Sequence[tuple[str, int]]) -> None:
        """Tokens so far of running tasks, in one unsynced transaction."""
        if not counts:
            return
        with self._write("recording task progress", synced=False) as conn:
            conn.cursor().executemany(
                "UPDATE tasks SET tokens = %s WHERE id = %s AND state = 'running'",
                [(tokens, task_id) for task_id, tokens in counts],
            )
