"""The shapes of the API's JSON that the server itself builds, as TypedDicts: the routes
are annotated to return them (so ``mypy --strict`` catches a drift) and ``/openapi.json``
takes its schemas from them (``mecha.server.openapi``).

The shapes of what the core shows live next to it: ``EventJson`` (mecha.event),
``TaskJson`` (mecha.task), ``TimelineJson`` (mecha.timeline), ``WriteJson``
(mecha.store.records). A key may be added to a shape only with its type here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, NotRequired

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from mecha.event import Event, EventJson, event_json
from mecha.store.records import MatchRecord, WriteJson, WriteRecord
from mecha.task import Task, TaskJson, task_json
from mecha.timeline import TimelineEntry, TimelineJson, timeline_json
from mecha.worker.kind import WorkerKind, WorkerState


class ErrorJson(TypedDict):
    """Every refusal: what was wrong, and (mostly) what to do about it."""

    error: str
    hint: NotRequired[str]


class MatchJson(TypedDict):
    """One worker's match decision about the event: ``outcome`` (matched, held,
    filtered…), the rule that decided (its index; -1: none), why, and the task it made."""

    worker: str
    outcome: str
    rule: int
    reason: str
    task_id: str


class EventDetailJson(EventJson):
    """An event with its match decisions, tasks, timeline and writes (``GET /event/{id}``)."""

    matches: list[MatchJson]
    tasks: list[TaskJson]
    timeline: list[TimelineJson]
    writes: list[WriteJson]


class TaskDetailJson(TaskJson):
    """A task with its timeline and its writes (``GET /task/{id}``)."""

    timeline: list[TimelineJson]
    writes: list[WriteJson]


def match_json(match: MatchRecord) -> MatchJson:
    """One worker's recorded decision about an event."""
    return {
        "worker": match.worker, "outcome": match.outcome, "rule": match.rule,
        "reason": match.reason, "task_id": match.task_id,
    }  # fmt: skip


def event_detail_json(
    event: Event, matches: Iterable[MatchRecord], tasks: Iterable[Task],
    steps: Iterable[TimelineEntry], writes: Iterable[WriteRecord],
) -> EventDetailJson:  # fmt: skip
    """An event's page, as the API and ``mecha event show --json`` show it."""
    return {
        **event_json(event, full=True),
        "matches": [match_json(match) for match in matches],
        "tasks": [task_json(task) for task in tasks],
        "timeline": [timeline_json(step) for step in steps],
        "writes": [record.as_json() for record in writes],
    }


def task_detail_json(
    task: Task, steps: Iterable[TimelineEntry], writes: Iterable[WriteRecord]
) -> TaskDetailJson:
    """A task's page, as the API and ``mecha task show --json`` show it."""
    return {
        **task_json(task),
        "timeline": [timeline_json(step) for step in steps],
        "writes": [record.as_json() for record in writes],
    }


@with_config(ConfigDict(extra="forbid"))
class TaskRequestJson(TypedDict):
    """The body of ``POST /task``: the prompt, and optionally the worker to take it (else
    the next online one, round robin by name) and the context it gets besides the prompt.
    No other key is taken."""

    prompt: str
    worker: NotRequired[str]
    context: NotRequired[dict[str, Any]]


class ActionRequestJson(TypedDict):
    """The optional body of an action (``POST /task/{id}/retry`` and the others): who asks,
    recorded on the timeline as ``<by> via API (<address>)``."""

    by: NotRequired[str]


class WritesRetryRequestJson(TypedDict):
    """The optional body of ``POST /event/{id}/writes/retry``: one write's ledger key (else
    every failed and dead-lettered write of the event), and who asks."""

    key: NotRequired[str]
    by: NotRequired[str]


class NodeJson(TypedDict):
    """A ``mecha serve`` process sharing the database: its state (alive, stale,
    stopped), seconds since its last heartbeat, and tasks running under it."""

    id: str
    host: str
    pid: int
    state: Literal["alive", "stale", "stopped"]
    heartbeat_age: float
    in_flight: int


class HealthJson(TypedDict):
    """Liveness and counts since start. Besides these keys, the dispatcher's and the
    write-back's figures (integers: ``tasks_sent``, ``writes_written``…) are included;
    ``nodes`` only for a caller the API itself would answer."""

    status: Literal["ok"]
    version: str
    events_stored: int
    commit_batches: int
    events_matched: int
    nodes: NotRequired[list[NodeJson]]


class WorkerJson(TypedDict):
    """A registered worker: kind, runtime state, last error (redacted), where it
    answers, when it started (null: never), its container, and its definition with every
    ``api_key`` masked and every other text value redacted."""

    name: str
    kind: WorkerKind
    state: WorkerState
    error: str
    endpoint: str
    started_at: str | None
    container_id: str
    definition: dict[str, Any]


class BudgetLineJson(TypedDict):
    """One budget's use in one sliding window: the worker (null: the global budget), the
    window (``tokens_per_day`` or ``tasks_per_hour``), use settled and reserved, the
    limit and what is left (null: no limit), tasks running and waiting on it, the window's
    start and end, and when its oldest use leaves it (times RFC 3339)."""

    worker: str | None
    window: Literal["tokens_per_day", "tasks_per_hour"]
    window_start: str
    window_end: str
    used: int
    reserved: int
    limit: int | None
    left: int | None
    in_flight: int
    waiting: int
    next_frees_at: str | None


class WebhookReceivedJson(TypedDict):
    """The event was stored (synced to disk); matching runs afterwards."""

    status: Literal["received"]
    id: str
    type: str
    source: str


class WebhookSeenJson(TypedDict):
    """A delivery stored before (``duplicate``: nothing new is written), or a forge's
    ``ping`` (``pong``: nothing is stored)."""

    status: Literal["duplicate", "pong"]
    delivery_id: str
