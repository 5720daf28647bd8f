"""What a log line is about: the event, task and worker being handled where it was written.

The pipeline sets them where it takes up one thing (the webhook route once its event is
stored, a background match, the dispatcher's send of a task, a write-back) with
``for_event`` / ``for_task``; each of those runs in an asyncio task of its own, so the
values end with it. ``ContextFilter`` (on the log handler) copies them onto every record
that does not carry its own (``extra={"worker": ...}``), for the JSON log format.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

#: the record attributes a log line may carry, in the order they are shown
FIELDS = ("event_id", "task_id", "worker")

_EVENT: ContextVar[str] = ContextVar("mecha_log_event_id", default="")
_TASK: ContextVar[str] = ContextVar("mecha_log_task_id", default="")
_WORKER: ContextVar[str] = ContextVar("mecha_log_worker", default="")


def for_event(event_id: str) -> None:
    """Log lines from here on (in this asyncio task or thread) are about ``event_id``."""
    _EVENT.set(event_id)


def for_task(task_id: str, worker: str, event_id: str = "") -> None:
    """Log lines from here on are about this task of ``worker`` (and its event)."""
    _TASK.set(task_id)
    _WORKER.set(worker)
    _EVENT.set(event_id)


class ContextFilter(logging.Filter):
    """Copies the event id, task id and worker known where a record was made onto it."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("event_id", _EVENT), ("task_id", _TASK), ("worker", _WORKER)):
            if not getattr(record, name, ""):
                setattr(record, name, var.get())
        return True
