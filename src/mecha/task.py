"""Tasks: one event matched to one worker, with its rendered prompt, and their states.

Matching creates a task ``pending`` with the dedup key ``<event id>:<worker>``, so one event
never makes two tasks for one worker however often it is matched again (after a crash, say).
Dispatch (the engine) moves it on: pending → running → completed | failed, and back to
pending with a retry time when a transient failure allows another attempt.

A worker with ``flow:`` gives each task a key (its rendered ``flow.key``): a key's tasks run
one at a time, oldest event first. With ``supersede`` (or ``debounce``) a newer event's task
replaces the key's waiting one, which ends ``superseded`` naming its replacer; with
``supersede`` a running one is marked too, and its answer is dropped when it comes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from typing_extensions import TypedDict  # pydantic reads it (to make the API's schema) on 3.11

from mecha.duration import format_duration
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
    "traceparent",  # the delivery's span, when traced: the task's spans join its trace
)


class TaskState(StrEnum):
    """pending → running → completed | failed (| cancelled | superseded)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: a newer event's task for the same flow key replaced it (it never writes back)
    SUPERSEDED = "superseded"


FINAL_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED, TaskState.SUPERSEDED}
)


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
    #: the seconds the last send may take (0 = unknown: not sent yet)
    timeout: float = 0.0
    #: tokens of the answer received so far in the last send (0 = none, or not streamed)
    tokens: int = 0
    #: its worker's ``flow.key`` rendered for its event ("" = no flow control), and when
    #: that event arrived (a key's tasks run in this order)
    flow_key: str = ""
    flow_at: float = 0.0
    #: the task that replaced it ("" = none): set when it ends ``superseded``, or while it
    #: still runs and its answer is to be dropped
    superseded_by: str = ""

    @property
    def final(self) -> bool:
        """Completed, failed, cancelled or superseded: nothing more happens to it by itself."""
        return self.state in FINAL_STATES


@dataclass(frozen=True, kw_only=True, slots=True)
class FlowMark:
    """A new task's place under its worker's ``flow:``: the rendered key, what to do."""

    key: str
    #: when its event arrived (unix seconds): older events' tasks of the key go first
    at: float
    #: a newer event replaces the key's waiting task and marks its running one
    supersede: bool = False
    #: seconds the key must be quiet before the task starts (0 = at once); a newer event
    #: replaces the waiting task (and starts the wait again)
    debounce: float = 0.0

    @property
    def replaces(self) -> bool:
        """Whether the key's waiting task gives way to this one."""
        return self.supersede or self.debounce > 0


@dataclass(frozen=True, kw_only=True, slots=True)
class NewTask:
    """A task matching (or the API) wants created (the store gives it an id)."""

    worker: str
    #: the event it is for; "" for a task sent through the API
    event_id: str
    prompt: str
    context: Mapping[str, Any] = field(default_factory=dict)
    #: its worker's flow control (None = none)
    flow: FlowMark | None = None

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


class ProgressJson(TypedDict):
    """How far a running task has come: seconds since its send, its time limit (null:
    none known), tokens of the answer so far, and all of that as text."""

    elapsed: float
    timeout: float | None
    tokens: int
    text: str


class TaskJson(TypedDict):
    """A task as the API shows it (times are RFC 3339 in UTC, null when not yet)."""

    id: str
    worker: str
    event_id: str
    dedup_key: str
    state: TaskState
    prompt: str
    context: dict[str, Any]
    error: str
    attempts: int
    result: dict[str, Any]
    next_retry_at: str | None
    created_at: str
    updated_at: str
    dispatched_at: str | None
    finished_at: str | None
    timeout: float | None
    progress: ProgressJson | None
    flow_key: str | None
    superseded_by: str | None


def task_json(task: Task, *, now: float | None = None) -> TaskJson:
    """The task as the API and ``mecha event show --json`` show it (``now``: unix time)."""
    return {
        "id": task.id,
        "worker": task.worker,
        "event_id": task.event_id,
        "dedup_key": task.dedup_key,
        "state": task.state,
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
        "timeout": task.timeout or None,
        "progress": progress_json(task, now=now),
        "flow_key": task.flow_key or None,
        "superseded_by": task.superseded_by or None,
    }


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running task has come: time against its limit, tokens where they stream."""

    elapsed: float
    #: the attempt's time limit in seconds (0 = unknown)
    timeout: float = 0.0
    #: tokens of the answer so far (0 = none yet, or the worker does not stream)
    tokens: int = 0

    def text(self) -> str:
        """``1m12s of 10m, 42 tokens``: whole seconds; the parts that are known."""
        shown = format_duration(max(0, int(self.elapsed)))
        if self.timeout:
            shown += f" of {format_duration(self.timeout)}"
        if self.tokens:
            shown += f", {self.tokens} token{'s' if self.tokens != 1 else ''}"
        return shown


def progress_of(task: Task, *, now: float) -> Progress | None:
    """The progress of a running task (None for any other state)."""
    if task.state is not TaskState.RUNNING or not task.dispatched_at:
        return None
    return Progress(elapsed=max(0.0, now - task.dispatched_at), timeout=task.timeout,
                    tokens=task.tokens)  # fmt: skip


def progress_json(task: Task, *, now: float | None = None) -> ProgressJson | None:
    """``{"elapsed", "timeout", "tokens", "text"}`` for a running task, else None."""
    progress = progress_of(task, now=time.time() if now is None else now)
    if progress is None:
        return None
    return {
        "elapsed": round(progress.elapsed, 1),
        "timeout": progress.timeout or None,
        "tokens": progress.tokens,
        "text": progress.text(),
    }
