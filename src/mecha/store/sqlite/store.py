"""SqliteStore: the Store on one local SQLite file in WAL mode.

``open_sqlite`` makes the folder (0700) and file (0600), switches to WAL with
``synchronous=FULL``, migrates, and returns a ``SqliteStore``. The connection is in
autocommit mode; multi-statement writes run in ``BEGIN IMMEDIATE`` … ``COMMIT`` so they
wait for the write lock up front instead of failing halfway. Every sqlite3 or OS error
becomes a StoreError that says what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from mecha.errors import MigrationError, StoreError
from mecha.event import Delivery, Event, EventState, received
from mecha.store import (
    Arrival,
    EventOutcome,
    MatchRecord,
    NodeRecord,
    TaskUpdate,
    WorkerRecord,
)
from mecha.store.common import (
    closed,
    definition_text,
    worker_exists,
    worker_moved,
    worker_not_found,
    worker_not_removable,
)
from mecha.store.sqlite import events as sqlite_events
from mecha.store.sqlite import ids as sqlite_ids
from mecha.store.sqlite import nodes as sqlite_nodes
from mecha.store.sqlite import tasks as sqlite_tasks
from mecha.store.sqlite import writes as sqlite_writes
from mecha.store.sqlite.budgets import BudgetMixin
from mecha.store.sqlite.file import configure, make_file, make_folder, rollback, translated
from mecha.store.sqlite.migrations import current_version, migrate
from mecha.store.sqlite.pages import PagesMixin
from mecha.store.sqlite.progress import ProgressMixin
from mecha.store.sqlite.prune import PruneMixin
from mecha.store.sqlite.reviews import ReviewsMixin
from mecha.store.sqlite.write_counts import WriteCountsMixin
from mecha.store.sqlite.writes import LedgerMixin
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import TimelineEntry
from mecha.worker.kind import WorkerKind, WorkerState

#: seconds a statement waits for another process's lock before it fails
BUSY_TIMEOUT = 5.0
_FIELDS = tuple(field.name for field in fields(WorkerRecord))  # the workers columns, in order
# built from constant column names only, never from input
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM workers"  # noqa: S608
_INSERT = f"INSERT INTO workers ({', '.join(_FIELDS)}) VALUES (:{', :'.join(_FIELDS)})"  # noqa: S608
_REPLACE = (
    _INSERT + " ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
    "definition = excluded.definition, source = excluded.source, updated_at = excluded.updated_at"
)
_UPDATE_STATE = (
    "UPDATE workers SET state = ?, error = ?, endpoint = ?, container_id = ?, "
    "started_at = ?, updated_at = ? WHERE name = ?"
)


def open_sqlite(path: Path, *, busy_timeout: float = BUSY_TIMEOUT) -> SqliteStore:
    """Open the database at ``path``, creating and migrating it as needed."""
    path = Path(path).absolute()
    make_folder(path.parent)
    make_file(path)
    with translated(path, "opening it"):
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    try:
        with translated(path, "opening it"):
            configure(conn, path, busy_timeout)
            migrate(conn)
    except MigrationError as exc:
        conn.close()
        raise MigrationError(f"{path}: {exc.message}", hint=exc.hint) from exc
    except BaseException:
        conn.close()
        raise
    return SqliteStore(conn, path)


class SqliteStore(
    LedgerMixin, WriteCountsMixin, ProgressMixin, PruneMixin, ReviewsMixin, BudgetMixin,
    PagesMixin,
):  # fmt: skip
    """The Store on one SQLite connection; calls from several threads take turns."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()

    def schema_version(self) -> int:
        """The migration version the database is at."""
        with self._use("reading the schema version") as conn:
            return current_version(conn)

    def add_workers(self, records: Sequence[WorkerRecord], *, replace: bool = False) -> None:
        """Register all of ``records`` or none; WorkerExists names every taken name.

        With ``replace``, a taken name gets the new kind, definition and source instead;
        its state, endpoint and container are kept.
        """
        if not records:
            return
        now = time.time()
        rows = [_to_row(record, now) for record in records]
        names = [record.name for record in records]
        repeated = sorted(name for name, count in Counter(names).items() if count > 1)
        with self._write("adding workers") as conn:
            taken = _taken(conn, names)
            if repeated or (taken and not replace):
                raise worker_exists([] if replace else taken, repeated)
            conn.executemany(_REPLACE if replace else _INSERT, rows)

    def get_worker(self, name: str) -> WorkerRecord:
        """The worker called ``name``; WorkerNotFound if there is none."""
        with self._use(f'reading worker "{name}"') as conn:
            row = conn.execute(_SELECT + " WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise worker_not_found(name)
        return _from_row(row)

    def list_workers(self) -> list[WorkerRecord]:
        """Every registered worker, sorted by name."""
        with self._use("listing workers") as conn:
            rows = conn.execute(_SELECT + " ORDER BY name").fetchall()
        return [_from_row(row) for row in rows]

    def remove_worker(self, name: str, *, allowed_states: Collection[WorkerState]) -> None:
        """Delete ``name`` if its state is in ``allowed_states``, else WorkerStateError."""
        with self._write(f'removing worker "{name}"') as conn:
            row = conn.execute("SELECT state FROM workers WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise worker_not_found(name)
            if row[0] not in {str(state) for state in allowed_states}:
                raise worker_not_removable(name, row[0], allowed_states)
            conn.execute("DELETE FROM workers WHERE name = ?", (name,))

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
        """Record a state change (and optionally where it runs); return the new record."""
        with self._write(f'setting the state of worker "{name}"') as conn:
            row = conn.execute(_SELECT + " WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise worker_not_found(name)
            old = _from_row(row)
            if only_from is not None and old.state not in only_from:
                raise worker_moved(name, old.state, state)
            now = time.time()
            starting = state == WorkerState.ONLINE and old.state == WorkerState.OFFLINE
            new = replace(
                old,
                state=WorkerState(state),
                error=error,
                endpoint=old.endpoint if endpoint is None else endpoint,
                container_id=old.container_id if container_id is None else container_id,
                started_at=now if starting else old.started_at,
                updated_at=now,
            )
            changed = (new.state, new.error, new.endpoint, new.container_id, new.started_at)
            conn.execute(_UPDATE_STATE, (*changed, now, name))
        return new

    def count_workers(self) -> int:
        """How many workers are registered."""
        with self._use("counting workers") as conn:
            return int(conn.execute("SELECT count(*) FROM workers").fetchone()[0])

    def insert_events(self, deliveries: Sequence[Delivery]) -> list[Event | None]:
        """Store every delivery, received now, in one transaction (one sync); None for each
        duplicate."""
        now = time.time()
        events = [received(delivery, now=now) for delivery in deliveries]
        made = self.insert_arrivals([Arrival(event=event) for event in events])
        return [e if tasks is not None else None for e, tasks in zip(events, made, strict=True)]

    def insert_arrivals(self, arrivals: Sequence[Arrival]) -> list[list[Task] | None]:
        """Store every arrival, with its outcome, in one transaction (one sync); None for
        each duplicate, else the tasks made."""
        with self._write("storing events") as conn:
            return sqlite_events.insert_arrivals(conn, arrivals)

    def get_event(self, event_id: str) -> Event:
        """The event with this id (or unique prefix), raw body included."""
        with self._use("reading an event") as conn:
            return sqlite_events.get_event(conn, event_id)

    def get_event_brief(self, event_id: str, *, keys: Sequence[str]) -> Event | None:
        """The event with only the attributes ``keys``, read in SQLite (no raw body)."""
        with self._use("reading an event") as conn:
            return sqlite_events.event_brief(conn, event_id, keys)

    def list_events(
        self, *, state: EventState | None = None, limit: int = 100, oldest_first: bool = False
    ) -> list[Event]:
        """Events newest first (or oldest first), without raw bodies."""
        with self._use("listing events") as conn:
            return sqlite_events.list_events(
                conn, state=state, limit=limit, oldest_first=oldest_first
            )

    def record_outcomes(self, outcomes: Sequence[EventOutcome]) -> list[list[Task]]:
        """Write what matching decided for each event, in one transaction."""
        with self._write("recording match decisions") as conn:
            return sqlite_events.record_outcomes(conn, outcomes, time.time())

    def list_matches(self, event_id: str) -> list[MatchRecord]:
        """Every worker's recorded decision about one event."""
        with self._use("reading match decisions") as conn:
            return sqlite_events.list_matches(conn, event_id)

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
        with self._use("listing tasks") as conn:
            return sqlite_tasks.list_tasks(
                conn, event_id=event_id, state=state, worker=worker, limit=limit, before=before
            )

    def get_task(self, task_id: str) -> Task:
        """The task with this id (or unique prefix)."""
        with self._use("reading a task") as conn:
            return sqlite_tasks.get_task(conn, task_id)

    def create_tasks(self, tasks: Sequence[NewTask]) -> list[Task]:
        """Store API tasks, pending."""
        ids = [sqlite_ids.new_id() for _ in tasks]
        with self._write("storing tasks") as conn:
            return sqlite_tasks.create_tasks(conn, tasks, time.time(), ids)

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> list[Task | None]:
        """Guarded task changes (and their quiet write plans) in one unsynced transaction.

        A power cut may forget them (the task is sent again: delivery is at least once).
        """
        now = time.time()
        with self._write("updating tasks", synced=False) as conn:
            done = sqlite_tasks.update_tasks(conn, updates, now)
            plans = [u.plan for u, t in zip(updates, done, strict=True) if u.plan and t]
            if plans:
                sqlite_writes.plan_writes(conn, plans, now)
            return done

    def task_states(self, task_ids: Collection[str]) -> dict[str, TaskState]:
        """The current state of each of these tasks."""
        with self._use("reading task states") as conn:
            return sqlite_tasks.task_states(conn, task_ids)

    def due_tasks(self, *, now: float, limit: int = 1000, skip: Collection[str] = ()) -> list[Task]:
        """Pending tasks whose retry time has come, oldest first, except those in ``skip``."""
        with self._use("listing due tasks") as conn:
            return sqlite_tasks.due_tasks(conn, now=now, limit=limit, skip=skip)

    def recover(self) -> tuple[int, int]:
        """Running tasks back to pending, busy workers back to online."""
        with self._write("recovering tasks after a stop") as conn:
            return sqlite_tasks.recover(conn, time.time())

    def register_node(self, node: NodeRecord) -> None:
        """Record a node starting; long-gone nodes are forgotten."""
        with self._write("registering this node") as conn:
            sqlite_nodes.register_node(conn, node, time.time())

    def heartbeat(self, node_id: str, *, lease: float) -> int:
        """The node's heartbeat and its tasks' leases, in one unsynced transaction."""
        with self._write("renewing this node's leases", synced=False) as conn:
            return sqlite_nodes.heartbeat(conn, node_id, lease, time.time())

    def stop_node(self, node_id: str) -> None:
        """Record that the node stopped cleanly."""
        with self._write("recording this node's stop") as conn:
            sqlite_nodes.stop_node(conn, node_id, time.time())

    def list_nodes(self) -> list[NodeRecord]:
        """Every known node, with its tasks in flight."""
        with self._use("listing nodes") as conn:
            return sqlite_nodes.list_nodes(conn)

    def take_back(self, *, now: float, exclude_node: str = "", limit: int = 1000) -> list[str]:
        """Running tasks whose lease ended before ``now`` back to pending."""
        with self._write("taking back tasks whose lease ended") as conn:
            return sqlite_nodes.take_back(
                conn, before=now, exclude_node=exclude_node, limit=limit, now=time.time()
            )

    def add_timeline(self, entries: Sequence[TimelineEntry]) -> None:
        """Record timeline steps."""
        with self._write("recording the timeline", synced=False) as conn:
            sqlite_tasks.add_timeline(conn, entries)

    def list_timeline(self, *, limit: int = 10_000, **whose: str | None) -> list[TimelineEntry]:
        """Steps of one event, one task, or a worker's own (``event_id=``, ``task_id=``,
        ``worker=``); oldest first."""
        with self._use("reading the timeline") as conn:
            return sqlite_tasks.list_timeline(conn, limit=limit, **whose)

    def registry_version(self) -> int:
        """A number that changes whenever a worker is added, replaced or removed."""
        with self._use("reading the registry version") as conn:
            return sqlite_events.registry_version(conn)

    def close(self) -> None:
        """Release the connection; the store is unusable afterwards. Safe to call twice."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with translated(self.path, "closing it"):
                    conn.close()

    @contextlib.contextmanager
    def _use(self, doing: str) -> Iterator[sqlite3.Connection]:
        """The connection, held alone; sqlite3 errors inside become StoreError."""
        with self._lock:
            if self._conn is None:
                raise closed(self.path, doing)
            with translated(self.path, doing):
                yield self._conn

    @contextlib.contextmanager
    def _write(self, doing: str, *, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction: committed on success, rolled back on any error.

        ``synced=False`` commits without waiting for the disk (``synchronous=NORMAL``): safe
        against a crash of the process, not against a power cut, which may forget the last
        such commits. The next synced commit syncs them too.
        """
        with self._use(doing) as conn:
            if not synced:
                conn.execute("PRAGMA synchronous = NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    rollback(conn)
                    raise
            finally:
                if not synced:
                    conn.execute("PRAGMA synchronous = FULL")


def _to_row(record: WorkerRecord, now: float) -> dict[str, Any]:
    """The INSERT parameters for ``record``; zero timestamps become ``now``."""
    row = {field: getattr(record, field) for field in _FIELDS}
    row["definition"] = definition_text(record)
    row.update(created_at=record.created_at or now, updated_at=record.updated_at or now)
    return row


def _from_row(row: tuple[Any, ...]) -> WorkerRecord:
    """The WorkerRecord for a row selected with ``_SELECT``."""
    values = dict(zip(_FIELDS, row, strict=True))
    try:
        values["kind"] = WorkerKind(values["kind"])
        values["state"] = WorkerState(values["state"])
        values["definition"] = json.loads(values["definition"])
    except ValueError as exc:
        raise StoreError(
            f'worker "{values["name"]}" is stored in a form this mecha cannot read: {exc}',
            hint="upgrade mecha if a newer release wrote it; else remove it and add it again",
        ) from exc
    return WorkerRecord(**values)


def _taken(conn: sqlite3.Connection, names: Sequence[str]) -> list[str]:
    """Which of ``names`` are registered already, sorted (one scan of the primary key)."""
    wanted = set(names)
    return sorted(row[0] for row in conn.execute("SELECT name FROM workers") if row[0] in wanted)
