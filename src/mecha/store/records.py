"""The records the Store Protocol takes and gives (``mecha.store`` re-exports them): what
matching decided, events arriving, guarded changes of tasks and writes, nodes, limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from typing_extensions import TypedDict  # pydantic reads it (to make the API's schema) on 3.11

from mecha.event import Event, EventState
from mecha.policy.writes import Write, WriteState, write_json
from mecha.task import NewTask, TaskState
from mecha.timeline import TimelineEntry
from mecha.worker.matching import Decision


@dataclass(frozen=True, kw_only=True, slots=True)
class EventOutcome:
    """What matching an event decided: its new state, each worker's decision, the tasks."""

    event_id: str
    state: EventState
    decisions: Sequence[Decision] = ()
    tasks: Sequence[NewTask] = ()
    #: what went wrong on the way (hydration, a worker's prompt), "" if nothing
    error: str = ""
    #: the event's attributes after hydration; None to keep the stored ones
    attrs: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Arrival:
    """A new event to store as it is, with what matching decided about it if it did."""

    #: the event as the engine built it (``mecha.event.received``): its id and times are kept
    event: Event
    #: recorded with it in the same transaction; None: stored ``received``, matched later.
    #: Its ``attrs`` are not used (the event carries its attributes)
    outcome: EventOutcome | None = None

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome.event_id != self.event.id:
            raise ValueError(
                f"the outcome for event {self.outcome.event_id} came with event {self.event.id}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchRecord:
    """One worker's recorded decision about one event."""

    worker: str
    outcome: str
    rule: int
    reason: str
    task_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerLimits:
    """A worker's limits across every node, checked by each claim of one of its tasks."""

    #: tasks of the worker running at once, on all nodes together
    concurrency: int
    #: its shared token bucket: tokens per second (0 = no rate limit) and the most it holds
    rate: float = 0.0
    burst: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskUpdate:
    """A change of one task's state, applied only if the task is in one of ``only_from``.

    The guard makes every change safe against a concurrent one (a `mecha task cancel`
    while the dispatcher finishes the task, say): the loser is told and changes nothing.
    """

    task_id: str
    state: TaskState
    only_from: frozenset[TaskState]
    #: the error text to record (None keeps the stored one; "" clears it)
    error: str | None = None
    #: the worker's answer to store (None keeps the stored one)
    result: dict[str, Any] | None = None
    #: pending only: not before this unix time (0 = at once)
    next_retry_at: float = 0.0
    #: a send starts: attempts + 1, dispatched_at = now, its ``timeout``, no tokens yet
    start_attempt: bool = False
    #: with ``start_attempt``: the seconds this attempt may take (0 = unknown)
    timeout: float = 0.0
    #: back to zero attempts (a retry by hand gets the full budget again)
    reset_attempts: bool = False
    #: the timeline step to record ("" = none) and its detail
    step: str = ""
    detail: str = ""
    #: write-back to record with this change, if it applies (dry runs, decisions only)
    plan: WritePlan | None = None
    #: with ``start_attempt``: the node claiming the task ("" = none) and the seconds its
    #: lease lasts (``lease_until`` = now + lease; the node's heartbeat renews it).
    #: Without: a running task is changed only if it runs under this node (one whose lease
    #: ended, and whose task another node took over, finds its late answer refused)
    node: str = ""
    lease: float = 0.0
    #: with ``start_attempt``: the worker's limits across nodes. The claim applies only
    #: while fewer than ``concurrency`` of the worker's tasks run and its bucket has a
    #: token (which the claim takes); else it is *held back*: the task comes back as it
    #: stands (pending), not None, and nothing is written
    limits: WorkerLimits | None = None
    #: with ``start_attempt``: the task has a flow key; the claim is held back (the task
    #: comes back pending, nothing written) while another task of its worker and key runs
    #: or an older one still waits, and a superseded task comes back superseded
    keyed: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeRecord:
    """One `mecha serve` process as the database knows it (table ``nodes``)."""

    #: ``<hostname>-<pid>-<4 hex>``, made at start
    id: str
    host: str
    pid: int
    #: the mecha version it runs
    version: str = ""
    started_at: float = 0.0
    heartbeat_at: float = 0.0
    #: when it stopped cleanly (0 while it runs, or if it died)
    stopped_at: float = 0.0
    #: tasks running under its lease (``list_nodes`` counts them)
    in_flight: int = 0

    def state(self, *, now: float, lease: float) -> Literal["alive", "stale", "stopped"]:
        """``stopped``, ``stale`` (no heartbeat for longer than ``lease``) or ``alive``."""
        if self.stopped_at:
            return "stopped"
        return "stale" if now - self.heartbeat_at > lease else "alive"


class WriteJson(TypedDict):
    """A write in the ledger as the API shows it: its key, task, event and worker, what it
    does (``action``) on what (``target``), where it stands, attempts so far, the last
    outcome (``detail``), the forge's id of what it made, and the write itself."""

    key: str
    task_id: str
    event_id: str
    worker: str
    action: str
    target: str
    state: WriteState
    attempts: int
    detail: str
    remote_id: str
    write: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteRecord:
    """One write in the ledger: what it is, where it stands, what the forge said."""

    write: Write
    task_id: str
    event_id: str
    state: WriteState
    #: attempts started so far
    attempts: int = 0
    #: planned: not before this unix time (0 = at once)
    next_at: float = 0.0
    #: the last outcome or failure, for people
    detail: str = ""
    #: the forge's id of what was made (a comment's id), "" if none
    remote_id: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    #: the node that claimed it last ("" = none), and, while it is ``calling``, until when
    #: that claim holds (renewed by the node's heartbeat)
    node: str = ""
    lease_until: float = 0.0

    @property
    def key(self) -> str:
        """The write's ledger key."""
        return self.write.key

    def as_json(self) -> WriteJson:
        """The record as the API and ``--json`` output show it (the write's text included)."""
        return {
            "key": self.key, "task_id": self.task_id, "event_id": self.event_id,
            "worker": self.write.worker, "action": self.write.action,
            "target": self.write.target, "state": self.state,
            "attempts": self.attempts, "detail": self.detail, "remote_id": self.remote_id,
            "write": write_json(self.write),
        }  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class WritePlan:
    """The writes one task's result allows, to be recorded before any is tried."""

    task_id: str
    event_id: str
    writes: Sequence[Write]
    #: new writes start here: PLANNED, or DRY_RUN (shown, never sent)
    state: WriteState = WriteState.PLANNED
    #: detail for each new write (a dry run's preview), by key
    details: dict[str, str] = field(default_factory=dict)
    #: the policy's decisions and anything skipped: recorded only if a write is new or
    #: there are no writes at all
    notes: Sequence[TimelineEntry] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteUpdate:
    """A change of one write's state, applied only if it is in one of ``only_from``."""

    key: str
    state: WriteState
    only_from: frozenset[WriteState]
    detail: str = ""
    remote_id: str = ""
    #: an attempt starts: attempts + 1
    start_attempt: bool = False
    #: tried again by hand: attempts back to at most 1 (the full budget again, while a
    #: write tried before is still looked for on the forge first)
    fresh_budget: bool = False
    next_at: float = 0.0
    #: the timeline step to record ("" = none); its detail is ``detail``
    step: str = ""
    #: with ``start_attempt``: the node claiming the write ("" = none) and the seconds its
    #: lease lasts. A claim takes a write another node is ``calling`` only once that
    #: node's lease ended (its heartbeat stopped renewing it)
    node: str = ""
    lease: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class EventQuery:
    """Which events a page of ``Store.event_page`` shows; every filter given must hold."""

    state: EventState | None = None
    #: the event's source, exactly ("" = any)
    source: str = ""
    #: the event's ``subject`` (a repository, "owner/name"), exactly ("" = any)
    repo: str = ""
    #: events this worker made a decision about with a task (a task was made for it)
    worker: str = ""
    #: created_at >= since
    since: float | None = None
    #: created_at < until
    until: float | None = None
    #: text found, whatever its case (Python's ``lower`` folds both), at the start of the
    #: id or anywhere in the type, actor, subject, delivery id or ``title`` attribute; plain
    #: text (``%`` and ``_`` are no wildcards). A search reads every row it passes
    #: (100,000 events without a match: ~30 ms on SQLite, ~70 ms on PostgreSQL)
    search: str = ""
    #: the (created_at, id) of the last row shown: the page starts after it (newest first)
    before: tuple[float, str] | None = None
    limit: int = 50


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerOutcome:
    """One worker's decision about an event on a page, and where its task stands."""

    worker: str
    #: the decision's outcome (``MatchRecord.outcome``: matched, held, not_matched, …)
    outcome: str
    task_id: str = ""
    #: the task's state now (None: no task, or it was pruned)
    task_state: TaskState | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRow:
    """One event of a page: without raw body and headers; its ``attrs`` hold only
    ``number`` (when not 0) and ``title`` (when not "")."""

    event: Event
    #: every worker's recorded decision about it, by worker name
    workers: tuple[WorkerOutcome, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerFigures:
    """What a worker's tasks add up to (``Store.worker_figures``)."""

    worker: str
    pending: int
    running: int
    #: tasks that finished completed (failed) at or after ``since``; cancelled and
    #: superseded tasks are not failures
    completed: int
    failed: int
    #: seconds from a task's creation to its completion (queueing and retries included),
    #: over the tasks completed since ``since``: the 50th and 95th percentiles, linearly
    #: interpolated between the nearest two (PostgreSQL's ``percentile_cont``); None if none
    latency_p50: float | None
    latency_p95: float | None
    #: the error of the worker's latest failed task (by finish time), "" if none failed
    last_error: str
