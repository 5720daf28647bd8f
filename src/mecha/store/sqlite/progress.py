"""Running tasks' progress in SQLite: ``ProgressMixin`` gives SqliteStore ``set_task_tokens``.

`mecha serve` writes how many tokens of each streaming answer it has received, at most
about once a second per task, so `mecha task ls` in another process can show them. The
commit is not synced (a power cut may forget a count; the task itself is unaffected).
"""

from __future__ import annotations

from collections.abc import Sequence

from mecha.store.sqlite.parts import SqliteParts


class ProgressMixin(SqliteParts):
    """SqliteStore's progress method; the class provides ``_write``."""

    def set_task_tokens(self, counts: Sequence[tuple[str, int]]) -> None:
        """Tokens so far of running tasks, in one unsynced transaction."""
        if not counts:
            return
        with self._write("recording task progress", synced=False) as conn:
            conn.executemany(
                "UPDATE tasks SET tokens = ? WHERE id = ? AND state = 'running'",
                [(tokens, task_id) for task_id, tokens in counts],
            )
