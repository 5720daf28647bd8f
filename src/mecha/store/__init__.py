"""The Store Protocol: every durable read and write Mecha makes goes through it.

Callers (CLI, engine, server) depend on this Protocol only; ``open_sqlite`` in
``mecha.store.sqlite.store`` (today) or a PostgreSQL module (later) builds a concrete one.
The Protocol is synchronous on purpose: both sqlite3 and psycopg offer a blocking
API, and async callers run store calls on a worker thread (``asyncio.to_thread``) or
hand them to a dedicated writer thread that groups commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from mecha.budget import BudgetUse, Reservation, Settlement, Verdict
from mecha.event import Delivery, Event, EventState
from mecha.store.records import (
    Arrival,
    EventOutcome,
    EventQuery,
    EventRow,
    MatchRecord,
    NodeRecord,
    TaskUpdate,
    WorkerFigures,
    WorkerLimits,
    WorkerOutcome,
    WritePlan,
    WriteRecord,
    WriteUpdate,
)
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import TimelineEntry
from mecha.worker.kind import WorkerState
from mecha.worker.record import WorkerRecord as WorkerRecord  # the store keeps these

#: the records the Protocol takes and gives (``mecha.store.records``), importable from here
__all__ = [
    "Arrival", "EventOutcome", "EventQuery", "EventRow", "MatchRecord", "NodeRecord",
    "Store", "TaskUpdate", "WorkerFigures", "WorkerLimits", "WorkerOutcome", "WorkerRecord",
    "WritePlan", "WriteRecord", "WriteUpdate",
]  # fmt: skip


class Store(Protocol):
    """Durable state. Every method commits before it returns."""

    def schema_version(self) -> int:
        """The migration version the database is at."""
        ...

    def add_workers(self, records: Sequence[WorkerRecord], *, replace: bool = False) -> None:
        """Register all of ``records`` or none; WorkerExists names every taken name.

        With ``replace``, taken names get the new definition; runtime state is kept.
        """
        ...

    def get_worker(self, name: str) -> WorkerRecord:
        """The worker called ``name``; WorkerNotFound if there is none."""
        ...

    def list_workers(self) -> list[WorkerRecord]:
        """Every registered worker, sorted by name."""
        ...

    def remove_worker(self, name: str, *, allowed_states: Collection[WorkerState]) -> None:
        """Delete ``name`` if its state is in ``allowed_states``, else WorkerStateError."""
        ...

    def set_worker_state(
        self,
        name: str,
        state: WorkerState,
        *,
        error: str = "",
        endpoint: str | None = None,
        container_id: str | None = None,
        only_from: Collection[WorkerState] | None = None,
    ) -> WorkerRecord:
        """Record a state change (and optionally where it runs); return the new record.

        With ``only_from``, change only if the current state is one of those (checked and
        written in one transaction), else WorkerStateError.
        """
        ...

    def count_workers(self) -> int:
        """How many workers are registered."""
        ...

    def insert_events(self, deliveries: Sequence[Delivery]) -> list[Event | None]:
        """Store every delivery as a new ``received`` event (a fresh id, arrived now), in one
        transaction synced to disk before returning.

        Returns the stored Event for each, or None where (source, delivery id) was stored
        already (a duplicate delivery creates nothing).
        """
        ...

    def insert_arrivals(self, arrivals: Sequence[Arrival]) -> list[list[Task] | None]:
        """Store every arrival's event, with its id and times, in one transaction synced to
        disk before returning (one commit for the batch).

        None in an arrival's place where (source, delivery id) was stored already: nothing
        of it is written. Otherwise the tasks its outcome made (an empty list without one):
        the event is written once, in the outcome's state with its error, and its
        decisions and tasks are recorded as ``record_outcomes`` would, at the event's
        ``created_at``. An arrival without an outcome is stored as it is (``received``).
        """
        ...

    def get_event(self, event_id: str) -> Event:
        """The event with this id (or unique prefix), raw body included; EventNotFound."""
        ...

    def get_event_brief(self, event_id: str, *, keys: Sequence[str]) -> Event | None:
        """The event (exact id) with only the attributes ``keys``; None if there is none."""
        ...

    def list_events(
        self, *, state: EventState | None = None, limit: int = 100, oldest_first: bool = False
    ) -> list[Event]:
        """Events newest first (or oldest first), without raw bodies."""
        ...

    def record_outcomes(self, outcomes: Sequence[EventOutcome]) -> list[list[Task]]:
        """Write what matching decided for each event in one transaction; the tasks made.

        A task whose dedup key (event:worker) exists already is not made again; the
        existing one is returned in its place.
        """
        ...

    def event_page(self, query: EventQuery) -> list[EventRow]:
        """One page of events for the dashboard: those ``query`` filters, newest first by
        (created_at, id), at most ``query.limit``, after ``query.before`` if given. Each
        with every worker's decision and its task's state (one query for the whole page).
        Read through indexes (the search alone reads every row it passes)."""
        ...

    def failed_writes(
        self, *, limit: int = 50, before: tuple[float, str] | None = None
    ) -> list[WriteRecord]:
        """Writes that failed or were dead-lettered, newest first by (updated_at, key); with
        ``before`` (the updated_at and key of the last shown), only those after it."""
        ...

    def worker_figures(self, *, since: float) -> dict[str, WorkerFigures]:
        """Each worker that has any task: its tasks pending and running now, finished since
        ``since`` (unix time), their latency, its last error (``WorkerFigures``). Read
        through an index per worker: cheap enough to call every few seconds."""
        ...

    def recent_changes(
        self, *, after: float, limit: int = 200
    ) -> tuple[list[EventRow], list[Task]]:
        """Events and tasks changed (``updated_at``) after ``after``, oldest change first:
        at most ``limit`` of each, plus any more that changed at the same time as the last
        one (so a next call with ``after`` = the last ``updated_at`` seen misses none).
        An index range read, for live updates polled every second or two."""
        ...

    def list_matches(self, event_id: str) -> list[MatchRecord]:
        """Every worker's recorded decision about one event, by worker name."""
        ...

    def list_tasks(
        self,
        *,
        event_id: str | None = None,
        state: TaskState | None = None,
        worker: str | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[Task]:
        """Tasks newest first (ties in the order they were made, latest first), optionally
        of one event, in one state or for one worker; with ``before`` (the created_at and
        id of the last task shown), only those after it in that order (keyset paging)."""
        ...

    def get_task(self, task_id: str) -> Task:
        """The task with this id (or unique prefix of at least 6); TaskNotFound."""
        ...

    def last_reviewed_head(self, worker: str, *, source: str, repo: str, number: int) -> str:
        """The head commit ``worker`` last completed a task on for pull request ``number`` of
        ``repo`` (an event's ``subject``) on ``source``; "" if it completed none.

        Only ``completed`` tasks count (failed, cancelled or superseded ones reviewed
        nothing), of events whose ``head_sha`` attribute is set; the latest to finish wins.
        """
        ...

    def create_tasks(self, tasks: Sequence[NewTask]) -> list[Task]:
        """Store tasks sent through the API (no event), pending, with a timeline entry."""
        ...

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> list[Task | None]:
        """Apply each update in one transaction; the task after it, or None if not applied.

        The commit need not be synced to disk (a power cut may undo the last updates; the
        tasks are then sent again); it survives a crash of the process.

        An update applies only if its task exists and is in one of ``only_from``. An
        applied update with a step adds a timeline entry. The event follows its tasks: it
        becomes ``dispatched`` when one starts and ``completed`` (all completed) or
        ``failed`` (any failed or cancelled) when the last one reaches a final state.
        """
        ...

    def task_states(self, task_ids: Collection[str]) -> dict[str, TaskState]:
        """The current state of each of these tasks (unknown ids are left out)."""
        ...

    def set_task_tokens(self, counts: Sequence[tuple[str, int]]) -> None:
        """Record (task id, tokens so far) of running tasks, unsynced, in one transaction.

        Tasks that are no longer running are left as they are.
        """
        ...

    def due_tasks(self, *, now: float, limit: int = 1000, skip: Collection[str] = ()) -> list[Task]:
        """Pending tasks whose retry time has come, oldest first, except those in ``skip``."""
        ...

    def recover(self) -> tuple[int, int]:
        """After a stop: running tasks back to pending, busy workers back to online, the
        leases of writes left ``calling`` ended (the next claim takes them at once).

        Returns (tasks requeued, workers reset). Each requeued task gets a timeline entry.
        """
        ...

    def register_node(self, node: NodeRecord) -> None:
        """Record a node starting (heartbeat now; its started time ``now`` if 0); a node with
        the same id is replaced. Nodes stopped or silent for a week are forgotten."""
        ...

    def heartbeat(self, node_id: str, *, lease: float) -> int:
        """The node is alive: its heartbeat is now, and the leases of the tasks it runs and
        the writes it calls last ``lease`` seconds from now, in one transaction. How many
        task leases were renewed."""
        ...

    def stop_node(self, node_id: str) -> None:
        """Record that the node stopped cleanly."""
        ...

    def list_nodes(self) -> list[NodeRecord]:
        """Every known node, oldest start first, with its tasks in flight (running under its
        id)."""
        ...

    def take_back(self, *, now: float, exclude_node: str = "", limit: int = 1000) -> list[str]:
        """Running tasks whose lease ended before ``now`` (tasks claimed by no node
        included) back to pending, each with a timeline entry; the ids taken, oldest first.

        Tasks of ``exclude_node`` (the caller's own node) are left alone. Two nodes sweeping
        at once never both take one task.
        """
        ...

    def add_timeline(self, entries: Sequence[TimelineEntry]) -> None:
        """Record steps that change no task (e.g. a task waiting); not synced to disk."""
        ...

    def list_timeline(
        self,
        *,
        event_id: str | None = None,
        task_id: str | None = None,
        worker: str | None = None,
        limit: int = 10_000,
    ) -> list[TimelineEntry]:
        """Steps of one event (its tasks' steps included), of one task, or a worker's own
        (no event, no task: what serve did with its definition; the newest ``limit``),
        oldest first."""
        ...

    def plan_writes(self, plans: Sequence[WritePlan]) -> list[list[WriteRecord]]:
        """Record each plan's writes in one transaction; the records.

        Synced to disk when a plan has writes to send; dry runs and plans without writes
        need not be (a power cut may forget them: the task is then sent again).

        A write whose key is in the ledger already is not recorded again: its record is
        returned as it stands (so a task sent twice never writes twice).
        """
        ...

    def update_writes(self, updates: Sequence[WriteUpdate]) -> list[WriteRecord | None]:
        """Apply guarded write changes in one transaction, synced; None where refused."""
        ...

    def due_writes(
        self, *, now: float, limit: int = 1000, skip: Collection[str] = ()
    ) -> list[WriteRecord]:
        """Planned writes whose time has come, and calling writes whose lease ended (their
        node stopped renewing it), oldest first, except ``skip``."""
        ...

    def list_writes(
        self, *, event_id: str | None = None, task_id: str | None = None
    ) -> list[WriteRecord]:
        """The writes of one event or one task, in the order they were planned."""
        ...

    def count_writes(
        self, *, worker: str, action: str, target: str, since: float, exclude: str = ""
    ) -> int:
        """How many of ``worker``'s ``action`` writes on ``target`` (``WriteRecord.write.
        target``) were first planned at or after ``since`` (unix time) and were made or are
        to be (planned, calling or done; not failed, dead-lettered or dry runs), leaving out
        the key ``exclude``. What ``policy.comment.max_per_hour`` is checked against."""
        ...

    def reserve_budget(self, reservations: Sequence[Reservation], *, now: float) -> list[Verdict]:
        """For each reservation in turn (each sees the ones before it), in one transaction:
        reserve the task's next attempt's estimated tokens and one task in each of its
        budgets, or in none (``mecha.budget.judge`` decides). Reservations of one budget,
        from any node, take turns. Rows that left the day's window are dropped.

        Granted: the ledger holds the reservation (``Verdict.ticket``) and the task's wait,
        if any, ends. *Taken* (``Verdict.taken``): the task is not pending, or its next
        attempt was reserved less than ``CLAIM_WITHIN`` ago (another node is claiming it);
        nothing is written. Refused: nothing is reserved; the task's wait is recorded, and
        the verdict says since when it waits and whether this refusal starts a wait (none
        before, or another budget refused it before).
        """
        ...

    def settle_budget(self, settlements: Sequence[Settlement]) -> None:
        """Settle reserved attempts in one transaction: at the tokens used, at the
        reservation (no use known), or dropped (never sent); each task's wait ends."""
        ...

    def budget_use(self, scopes: Sequence[str], *, now: float) -> list[BudgetUse]:
        """Each scope's use in its sliding windows (a worker's name, or ``GLOBAL``: all)."""
        ...

    def registry_version(self) -> int:
        """A number that changes whenever a worker is added, replaced or removed."""
        ...

    def close(self) -> None:
        """Release the connection; the store is unusable afterwards."""
        ...
