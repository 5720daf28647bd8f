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
    attempts: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class NewTask:
    """A task matching wants created (the store gives it an id)."""

    worker: str
    event_id: str
    prompt: str
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """``<event id>:<worker>``: one task per event and worker."""
        return f"{self.event_id}:{self.worker}"


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
        "created_at": timestamp(task.created_at),
        "updated_at": timestamp(task.updated_at),
    }
