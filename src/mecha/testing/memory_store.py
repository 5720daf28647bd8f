"""MemoryStore: the whole ``Store`` (and ``PruneStore``) in memory, for tests.

It behaves as ``SqliteStore`` does where a caller can tell (ids, dedupe, the guards of
every change, orderings and limits, the timeline, the write ledger, the errors and their
messages); the store conformance suite (``tests/integration/store``) runs the same tests
on both. Calls from several threads take turns on one lock. Each call is one transaction:
it changes a copy of the tables, which the store keeps only if the call returns, so a call
that fails changes nothing.

What only a file has is answered plainly: ``schema_version`` is 0 (there is no schema),
``disk_usage`` and ``reclaim`` are all zeros, and nothing is synced or compressed. The
rows themselves can be looked at with ``rows(table)`` (SQLite's table names).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from mecha.event import Delivery, Event, EventState, received
from mecha.store import (
    Arrival,
    EventOutcome,
    EventQuery,
    EventRow,
    MatchRecord,
    NodeRecord,
    TaskUpdate,
    WorkerFigures,
    WorkerRecord,
    WritePlan,
    WriteRecord,
    WriteUpdate,
)
from mecha.store.common import closed, new_id
from mecha.store.pruning import DiskUsage, PruneCounts
from mecha.task import NewTask, Task, TaskState
from mecha.testing.memory import events as event_rows
from mecha.testing.memory import nodes as node_rows
from mecha.testing.memory import pages as page_rows
from mecha.testing.memory import prune as prune_rows
from mecha.testing.memory import reviews as review_rows
from mecha.testing.memory import tasks as task_rows
from mecha.testing.memory import workers as worker_rows
from mecha.testing.memory import write_counts
from mecha.testing.memory import writes as write_rows
from mecha.testing.memory.budgets import BudgetMixin
from mecha.testing.memory.tables import Tables
from mecha.timeline import TimelineEntry
from mecha.worker.kind import WorkerState


class MemoryStore(BudgetMixin):
    """The Store in memory; calls from several threads take turns."""

    def __init__(self) -> None:
        self._tables: Tables | None = Tables()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryStore()"

    @contextlib.contextmanager
    def _use(self, doing: str) -> Iterator[Tables]:
        """The tables, held alone, to read."""
        with self._lock:
            if self._tables is None:
                raise closed("in memory", doing)
            yield self._tables

    @contextlib.contextmanager
    def _write(self, doing: str) -> Iterator[Tables]:
        """A copy of the tables to change, kept if the block ends without an error."""
        with self._use(doing) as tables:
            changed = tables.copy()
            yield changed
            self._tables = changed

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The rows of one table (``events``, ``event_matches``, ``tasks``, ``timeline``,
        ``writes``, ``workers``) as column → value, in the order they were made."""
        with self._use("looking at a table") as tables:
            return tables.rows(table)

    # --- workers ------------------------------------------------------------------------

    def schema_version(self) -> int:
        """0: memory has no schema and no migrations."""
        with self._use("reading the schema version"):
            return 0

    def add_workers(self, records: Sequence[WorkerRecord], *, replace: bool = False) -> None:
        """Register all of ``records`` or none; WorkerExists names every taken name."""
        if not records:
            return
        now = time.time()
        rows = [worker_rows.row_of(record, now) for record in records]
        with self._write("adding workers") as tables:
            worker_rows.add_workers(tables, rows, replace=replace)

    def get_worker(self, name: str) -> WorkerRecord:
        """The worker called ``name``; WorkerNotFound if there is none."""
        with self._use(f'reading worker "{name}"') as tables:
            return worker_rows.get_worker(tables, name)

    def list_workers(self) -> list[WorkerRecord]:
        """Every registered worker, sorted by name."""
        with self._use("listing workers") as tables:
            return worker_rows.list_workers(tables)

    def remove_worker(self, name: str, *, allowed_states: Collection[WorkerState]) -> None:
        """Delete ``name`` if its state is in ``allowed_states``, else WorkerStateError."""
        with self._write(f'removing worker "{name}"') as tables:
            worker_rows.remove_worker(tables, name, allowed_states)

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
        """Record a state change (and optionally where it runs); the new record."""
        with self._write(f'setting the state of worker "{name}"') as tables:
            return worker_rows.set_worker_state(
                tables, name, state, error=error, endpoint=endpoint, container_id=container_id,
                only_from=only_from, now=time.time(),
            )  # fmt: skip

    def count_workers(self) -> int:
        """How many workers are registered."""
        with self._use("counting workers") as tables:
            return len(tables.workers)

    def registry_version(self) -> int:
        """A number that changes whenever a worker is added, replaced or removed."""
        with self._use("reading the registry version") as tables:
            return tables.registry

    # --- events -------------------------------------------------------------------------

    def insert_events(self, deliveries: Sequence[Delivery]) -> list[Event | None]:
        """Store every delivery, received now; None for each duplicate."""
        now = time.time()
        made = [received(delivery, now=now) for delivery in deliveries]
        stored = self.insert_arrivals([Arrival(event=event) for event in made])
        return [e if tasks is not None else None for e, tasks in zip(made, stored, strict=True)]

    def insert_arrivals(self, arrivals: Sequence[Arrival]) -> list[list[Task] | None]:
        """Store every arrival with its outcome; None for each duplicate, else the tasks."""
        with self._write("storing events") as tables:
            return event_rows.insert_arrivals(tables, arrivals)

    def get_event(self, event_id: str) -> Event:
        """The event with this id (or unique prefix), raw body included; EventNotFound."""
        with self._use("reading an event") as tables:
            return event_rows.get_event(tables, event_id)

    def get_event_brief(self, event_id: str, *, keys: Sequence[str]) -> Event | None:
        """The event (exact id) with only the attributes ``keys``; None if there is none."""
        with self._use("reading an event") as tables:
            return event_rows.event_brief(tables, event_id, keys)

    def list_events(
        self, *, state: EventState | None = None, limit: int = 100, oldest_first: bool = False
    ) -> list[Event]:
        """Events newest first (or oldest first), without raw bodies."""
        with self._use("listing events") as tables:
            return event_rows.list_events(
                tables, state=state, limit=limit, oldest_first=oldest_first
            )

    def record_outcomes(self, outcomes: Sequence[EventOutcome]) -> list[list[Task]]:
        """Write what matching decided for each event; the tasks made."""
        with self._write("recording match decisions") as tables:
            return event_rows.record_outcomes(tables, outcomes, time.time())

    def list_matches(self, event_id: str) -> list[MatchRecord]:
        """Every worker's recorded decision about one event, by worker name."""
        with self._use("reading match decisions") as tables:
            return event_rows.list_matches(tables, event_id)

    # --- tasks and the timeline ---------------------------------------------------------

    def list_tasks(
        self,
        *,
        event_id: str | None = None,
        state: TaskState | None = None,
        worker: str | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[Task]:
        """Tasks newest first, optionally of one event, in one state or for one worker,
        after the task ``before`` names (its created_at and id)."""
        with self._use("listing tasks") as tables:
            return task_rows.list_tasks(
                tables, event_id=event_id, state=state, worker=worker, limit=limit, before=before
            )

    def event_page(self, query: EventQuery) -> list[EventRow]:
        """One page of events, newest first, with each worker's decision."""
        with self._use("reading a page of events") as tables:
            return page_rows.event_page(tables, query)

    def failed_writes(
        self, *, limit: int = 50, before: tuple[float, str] | None = None
    ) -> list[WriteRecord]:
        """Failed and dead-lettered writes, newest first."""
        with self._use("listing failed writes") as tables:
            return page_rows.failed_writes(tables, limit=limit, before=before)

    def worker_figures(self, *, since: float) -> dict[str, WorkerFigures]:
        """Each worker's task figures."""
        with self._use("reading worker figures") as tables:
            return page_rows.worker_figures(tables, since=since)

    def recent_changes(
        self, *, after: float, limit: int = 200
    ) -> tuple[list[EventRow], list[Task]]:
        """Events and tasks changed after ``after``, oldest change first."""
        with self._use("reading recent changes") as tables:
            return page_rows.recent_changes(tables, after=after, limit=limit)

    def get_task(self, task_id: str) -> Task:
        """The task with this id (or unique prefix of at least 6); TaskNotFound."""
        with self._use("reading a task") as tables:
            return task_rows.get_task(tables, task_id)

    def last_reviewed_head(self, worker: str, *, source: str, repo: str, number: int) -> str:
        """See Store.last_reviewed_head."""
        with self._use(f"reading what {worker} last reviewed") as tables:
            return review_rows.last_reviewed_head(
                tables, worker, source=source, repo=repo, number=number
            )

    def create_tasks(self, tasks: Sequence[NewTask]) -> list[Task]:
        """Store tasks sent through the API, pending, with a timeline entry."""
        ids = [new_id() for _ in tasks]
        with self._write("storing tasks") as tables:
            return task_rows.create_tasks(tables, tasks, time.time(), ids)

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> list[Task | None]:
        """Guarded task changes (and the write plans that come with them)."""
        now = time.time()
        with self._write("updating tasks") as tables:
            done = task_rows.update_tasks(tables, updates, now)
            plans = [u.plan for u, t in zip(updates, done, strict=True) if u.plan and t]
            if plans:
                write_rows.plan_writes(tables, plans, now)
            return done

    def task_states(self, task_ids: Collection[str]) -> dict[str, TaskState]:
        """The current state of each of these tasks (unknown ids are left out)."""
        with self._use("reading task states") as tables:
            return task_rows.task_states(tables, task_ids)

    def set_task_tokens(self, counts: Sequence[tuple[str, int]]) -> None:
        """Tokens so far of running tasks; others are left as they are."""
        if not counts:
            return
        with self._write("recording task progress") as tables:
            task_rows.set_task_tokens(tables, counts)

    def due_tasks(self, *, now: float, limit: int = 1000, skip: Collection[str] = ()) -> list[Task]:
        """Pending tasks whose retry time has come, oldest first, except those in ``skip``."""
        with self._use("listing due tasks") as tables:
            return task_rows.due_tasks(tables, now=now, limit=limit, skip=skip)

    def recover(self) -> tuple[int, int]:
        """Running tasks back to pending, busy workers back to online."""
        with self._write("recovering tasks after a stop") as tables:
            return task_rows.recover(tables, time.time())

    # --- nodes and leases -----------------------------------------------------------------

    def register_node(self, node: NodeRecord) -> None:
        """Record a node starting; long-gone nodes are forgotten."""
        with self._write("registering this node") as tables:
            node_rows.register_node(tables, node, time.time())

    def heartbeat(self, node_id: str, *, lease: float) -> int:
        """The node's heartbeat and its tasks' leases; how many leases were renewed."""
        with self._write("renewing this node's leases") as tables:
            return node_rows.heartbeat(tables, node_id, lease, time.time())

    def stop_node(self, node_id: str) -> None:
        """Record that the node stopped cleanly."""
        with self._write("recording this node's stop") as tables:
            node_rows.stop_node(tables, node_id, time.time())

    def list_nodes(self) -> list[NodeRecord]:
        """Every known node, oldest start first, with its tasks in flight."""
        with self._use("listing nodes") as tables:
            return node_rows.list_nodes(tables)

    def take_back(self, *, now: float, exclude_node: str = "", limit: int = 1000) -> list[str]:
        """Running tasks whose lease ended before ``now`` back to pending."""
        with self._write("taking back tasks whose lease ended") as tables:
            return node_rows.take_back(
                tables, before=now, exclude_node=exclude_node, limit=limit, now=time.time()
            )

    def add_timeline(self, entries: Sequence[TimelineEntry]) -> None:
        """Record steps that change no task."""
        with self._write("recording the timeline") as tables:
            tables.add_timeline(list(entries))

    def list_timeline(self, *, limit: int = 10_000, **whose: str | None) -> list[TimelineEntry]:
        """Steps of one event, one task, or a worker's own (``event_id=``, ``task_id=``,
        ``worker=``); oldest first."""
        with self._use("reading the timeline") as tables:
            return task_rows.list_timeline(tables, limit=limit, **whose)

    # --- the write ledger ---------------------------------------------------------------

    def plan_writes(self, plans: Sequence[WritePlan]) -> list[list[WriteRecord]]:
        """Record planned writes; keys in the ledger already stand."""
        with self._write("recording planned writes") as tables:
            return write_rows.plan_writes(tables, plans, time.time())

    def update_writes(self, updates: Sequence[WriteUpdate]) -> list[WriteRecord | None]:
        """Apply guarded write changes; None where refused."""
        with self._write("recording write outcomes") as tables:
            return write_rows.update_writes(tables, updates, time.time())

    def due_writes(
        self, *, now: float, limit: int = 1000, skip: Collection[str] = ()
    ) -> list[WriteRecord]:
        """Planned or calling writes whose time has come, oldest first, except ``skip``."""
        with self._use("listing due writes") as tables:
            return write_rows.due_writes(tables, now=now, limit=limit, skip=skip)

    def list_writes(
        self, *, event_id: str | None = None, task_id: str | None = None
    ) -> list[WriteRecord]:
        """The writes of one event or one task, in the order they were planned."""
        with self._use("reading the write ledger") as tables:
            return write_rows.list_writes(tables, event_id=event_id, task_id=task_id)

    def count_writes(
        self, *, worker: str, action: str, target: str, since: float, exclude: str = ""
    ) -> int:
        """See Store.count_writes."""
        with self._use("counting writes") as tables:
            return write_counts.count_writes(
                tables, worker=worker, action=action, target=target, since=since,
                exclude=exclude,
            )  # fmt: skip

    # --- pruning ------------------------------------------------------------------------

    def prune(
        self, before: Mapping[str, float], *, limit: int = 500, seconds: float | None = None
    ) -> PruneCounts:
        """Remove at most ``limit`` finished rows older than ``before`` (``seconds`` is
        not needed: nothing here takes time)."""
        if not before or limit <= 0:
            return PruneCounts()
        with self._write("removing old rows") as tables:
            return prune_rows.prune(tables, before, limit)

    def count_prunable(self, before: Mapping[str, float]) -> PruneCounts:
        """How many rows ``prune`` would remove."""
        with self._use("counting old rows") as tables:
            return prune_rows.count_prunable(tables, before)

    def reclaim(self) -> DiskUsage:
        """Nothing to give back: no disk is used."""
        return self.disk_usage()

    def disk_usage(self) -> DiskUsage:
        """All zeros: a MemoryStore keeps nothing on disk."""
        with self._use("reading the database's size"):
            return DiskUsage(database=0, wal=0, free=0)

    def close(self) -> None:
        """Drop everything; the store is unusable afterwards. Safe to call twice."""
        with self._lock:
            self._tables = None
