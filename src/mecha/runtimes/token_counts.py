"""Tokens received so far, per task, for answers that stream in this process.

An adapter (``adapter_server``) serving a task counts the chunks of text its model API
streams and sets the task's count here; `mecha serve` (``mecha.engine.progress``) takes
the counts that changed about once a second and writes them to the store, where every
CLI process and the API read them. ``COUNTS`` is this process's map: adapters and the
writer meet there without being wired to each other. Used from one event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Container


class TokenCounts:
    """Task id → tokens so far, and which counts changed since they were last taken."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._changed: set[str] = set()

    def reporter(self, task_id: str) -> Callable[[int], None]:
        """The function a model call tells its running count for ``task_id``."""

        def report(tokens: int) -> None:
            self._counts[task_id] = tokens
            self._changed.add(task_id)

        return report

    def finish(self, task_id: str) -> None:
        """The task's answer is complete (or failed): forget it."""
        self._counts.pop(task_id, None)
        self._changed.discard(task_id)

    def get(self, task_id: str) -> int:
        """The count so far (0 if none)."""
        return self._counts.get(task_id, 0)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._counts

    def take_changed(self, held: Container[str] = ()) -> list[tuple[str, int]]:
        """(task id, tokens) for every count set since it was last taken, but those ``held``
        (they stay changed, to be taken later)."""
        taken = sorted(task_id for task_id in self._changed if task_id not in held)
        self._changed.difference_update(taken)
        return [(task_id, self._counts[task_id]) for task_id in taken]


#: this process's counts (`mecha serve`'s adapters report here)
COUNTS = TokenCounts()
