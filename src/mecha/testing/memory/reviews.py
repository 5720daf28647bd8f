"""The head a worker last reviewed on a pull request, in memory, as
``mecha.store.sqlite.reviews`` finds it: the latest completed task of the worker on an event
of that pull request with a head commit (the events' ``number`` and ``head_sha`` columns)."""

from __future__ import annotations

from mecha.task import TaskState
from mecha.testing.memory.tables import Tables


def last_reviewed_head(tables: Tables, worker: str, *, source: str, repo: str, number: int) -> str:
    """See Store.last_reviewed_head."""
    found: list[tuple[float, int, str]] = []
    for task in tables.tasks.values():
        event = tables.events.get(task.event_id)
        if task.worker != worker or task.state is not TaskState.COMPLETED or event is None:
            continue
        if (event.source, event.subject, event.number) == (source, repo, number) and event.head_sha:
            found.append((task.finished_at, task.seq, event.head_sha))
    return max(found)[2] if found else ""
