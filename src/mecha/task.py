"""Tasks: one event matched to one worker, with its rendered prompt, and their states.

Matching creates a task ``pending`` with the dedup key ``<event id>:<worker>``, so one event
never makes two tasks for one worker however often it is matched again (after a crash, say).
Dispatch (the engine) moves it on: pending → running → completed | failed, and back to
pending with a retry time when a transient failure allows another attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mecha.event import timestamp

#: event attributes a worker receives in the task's context (upstream §6), when present
CONTEXT_ATTRS = (
    "repo_owner",
    "repo_name",
    "number",
    "ref",
    "diff",
    "file_list",
    "head_sha",
    "base_sha",
    "sender",
)


class TaskState(StrEnum):
    """pending → running → completed | failed (| cancelled)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED})


@dataclass(frozen=True, kw_only=True, slots=True)
class Task:
    """A stored task."""

    id: str
    worker: str
    event_id: str
    dedup_key: str
    prompt: str
    context: Mapping[str, Any] = field(default_factory=dict)
    state: TaskState = TaskState.PENDING
    error: str = ""
    #: sends started so far (a retry after a transient failure is one more)
    attempts: int = 0
    #: the worker's answer as stored (result contract JSON); empty until it answers
    result: Mapping[str, Any] = field(default_factory=dict)
    #: unix seconds before which a pending task is not sent (retry backoff); 0 = now
    next_retry_at: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    #: when the last send started / when it reached a final state (0 = not yet)
    dispatched_at: float = 0.0
    finished_at: float = 0.0

    @property
    def final(self) -> bool:
        """Completed, failed or cancelled: nothing more happens to it by itself."""
        return self.state in FINAL_STATES


@dataclass(frozen=True, kw_only=True, slots=True)
class NewTask:
    """A task matching (or the API) wants created (the store gives it an id)."""

    worker: str
    #: the event it is for; "" for a task sent through the API
    event_id: str
    prompt: str
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """``<event id>:<worker>``: one task per event and worker ("" for API tasks)."""
        return f"{self.event_id}:{self.worker}" if self.event_id else ""


def task_context(
    *, source: str, actor: str, subject: str, attrs: Mapping[str, Any]
) -> dict[str, Any]:
    """What the worker gets besides the prompt: who, where, and the PR's diff if known."""
    context: dict[str, Any] = {"source": source, "actor": actor, "subject": subject}
    for key in CONTEXT_ATTRS:
        if key in attrs:
            context[key] = attrs[key]
    return context


def task_json(task: Task) -> dict[str, Any]:
    """The task as the API and ``mecha event show --json`` show it."""
    return {
        "id": task.id,
        "worker": task.worker,
        "event_id": task.event_id,
        "dedup_key": task.dedup_key,
        "state": task.state.value,
        "prompt": task.prompt,
        "context": dict(task.context),
        "error": task.error,
        "attempts": task.attempts,
        "result": dict(task.result),
        "next_retry_at": timestamp(task.next_retry_at) if task.next_retry_at else None,
        "created_at": timestamp(task.created_at),
        "updated_at": timestamp(task.updated_at),
        "dispatched_at": timestamp(task.dispatched_at) if task.dispatched_at else None,
        "finished_at": timestamp(task.finished_at) if task.finished_at else None,
    }
