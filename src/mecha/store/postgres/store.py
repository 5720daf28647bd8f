"""PostgresStore: the Store on a PostgreSQL database, through a pool of connections.

``open_postgres`` connects once to say clearly what is wrong if it cannot (host:port,
never the password), migrates under an advisory lock, then opens a
``psycopg_pool.ConnectionPool``. Calls from several threads run at once, each on a
connection of its own: reads in autocommit mode (each statement sees the latest
commits), writes in one pipelined transaction each. Events and the write ledger are
committed synced; task updates, progress, the timeline and pruning with
``synchronous_commit = off`` (a crash of the server may forget the last of those; a task
is then sent again), as SQLite commits them with ``synchronous=NORMAL``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from functools import partial

from psycopg_pool import ConnectionPool

from mecha.errors import MigrationError
from mecha.event import Delivery, Event, EventState, received
from mecha.store import Arrival, EventOutcome, MatchRecord, NodeRecord, TaskUpdate
from mecha.store.common import closed, new_id
from mecha.store.postgres import events as pg_events
from mecha.store.postgres import nodes as pg_nodes
from mecha.store.postgres import tasks as pg_tasks
from mecha.store.postgres import writes as pg_writes
from mecha.store.postgres.adapters import configure
from mecha.store.postgres.budgets import BudgetMixin
from mecha.store.postgres.migrations import current_version, migrate
from mecha.store.postgres.pages import PagesMixin
from mecha.store.postgres.parts import Conn
from mecha.store.postgres.progress import ProgressMixin
from mecha.store.postgres.prune import PruneMixin
from mecha.store.postgres.reviews import ReviewsMixin
from mecha.store.postgres.server import Server
from mecha.store.postgres.workers import WorkersMixin
from mecha.store.postgres.write_counts import WriteCountsMixin
from mecha.store.postgres.writes import LedgerMixin
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import TimelineEntry

#: connections one store keeps at most (the writer, the reads, dispatch, the pruner)
MAX_CONNECTIONS = 8
#: seconds a call waits for a free connection before it fails
POOL_WAIT = 30.0
#: seconds a statement waits for a row another connection holds before it fails (SQLite's
#: busy timeout)
LOCK_TIMEOUT = 5.0


def open_postgres(
    url: str,
    *,
    migrate: bool = True,
    max_connections: int = MAX_CONNECTIONS,
    lock_timeout: float = LOCK_TIMEOUT,
) -> PostgresStore:
    """Open the database ``url`` names, migrating it first unless told not to.

    StoreError (without the password) if the server cannot be reached, refuses the user,
    or has no such database; MigrationError if its schema is newer than this mecha knows
    (with ``migrate``; without, it is opened as it is: ``schema_version`` tells).
    """
    server = Server.parse(url)
    with contextlib.closing(server.connect("connecting")) as conn:
        try:
            with server.translated("migrating the schema"):
                if migrate:
                    migrate_schema(conn)
        except MigrationError as exc:
            raise MigrationError(f"{server}: {exc.message}", hint=exc.hint) from None
    pool: ConnectionPool[Conn] = ConnectionPool(
        server.conninfo, min_size=1, max_size=max_connections, open=False,
        kwargs={"autocommit": True}, configure=partial(configure, lock_timeout=lock_timeout),
        name=f"mecha {server}",
        timeout=POOL_WAIT,
    )  # fmt: skip
    with server.translated("opening the connection pool"):
        pool.open(wait=True, timeout=POOL_WAIT)
    return PostgresStore(pool, server)


def migrate_schema(conn: Conn) -> int:
    """``migrate`` (named apart from ``open_postgres``'s flag)."""
    return migrate(conn)


class PostgresStore(
    WorkersMixin,
    LedgerMixin,
    WriteCountsMixin,
    ProgressMixin,
    PruneMixin,
    ReviewsMixin,
    BudgetMixin,
    PagesMixin,
):
    """The Store on a pool of PostgreSQL connections; threads run their calls at once."""

    def __init__(self, pool: ConnectionPool[Conn], server: Server) -> None:
        self.server = server
        self._pool: ConnectionPool[Conn] | None = pool
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({self.server.url!r})"

    def schema_version(self) -> int:
        """The migration version the database is at."""
        with self._use("reading the schema version") as conn:
            return current_version(conn)

    def insert_events(self, deliveries: Sequence[Delivery]) -> list[Event | None]:
        """Store every delivery, received now, in one synced transaction; None for each
        duplicate."""
        now = time.time()
        events = [received(delivery, now=now) for delivery in deliveries]
        made = self.insert_arrivals([Arrival(event=event) for event in events])
        return [e if tasks is not None else None for e, tasks in zip(events, made, strict=True)]

    def insert_arrivals(self, arrivals: Sequence[Arrival]) -> list[list[Task] | None]:
        """Store every arrival, with its outcome, in one synced transaction; None for each
        duplicate (here or on another node), else the tasks made."""
        with self._write("storing events") as conn:
            return pg_events.insert_arrivals(conn, arrivals)

    def get_event(self, event_id: str) -> Event:
        """The event with this id (or unique prefix), raw body included."""
        with self._use("reading an event") as conn:
            return pg_events.get_event(conn, event_id)

    def get_event_brief(self, event_id: str, *, keys: Sequence[str]) -> Event | None:
        """The event with only the attributes ``keys``, picked in PostgreSQL."""
        with self._use("reading an event") as conn:
            return pg_events.event_brief(conn, event_id, keys)

    def list_events(
        self, *, state: EventState | None = None, limit: int = 100, oldest_first: bool = False
    ) -> list[Event]:
        """Events newest first (or oldest first), without raw bodies."""
        with self._use("listing events") as conn:
            return pg_events.list_events(conn, state=state, limit=limit, oldest_first=oldest_first)

    def record_outcomes(self, outcomes: Sequence[EventOutcome]) -> list[list[Task]]:
        """Write what matching decided for each event, in one transaction."""
        with self._write("recording match decisions") as conn:
            return pg_events.record_outcomes(conn, outcomes, time.time())

    def list_matches(self, event_id: str) -> list[MatchRecord]:
        """Every worker's recorded decision about one event."""
        with self._use("reading match decisions") as conn:
            return pg_events.list_matches(conn, event_id)

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
            return pg_tasks.list_tasks(
                conn, event_id=event_id, state=state, worker=worker, limit=limit, before=before
            )

    def get_task(self, task_id: str) -> Task:
        """The task with this id (or unique prefix)."""
        with self._use("reading a task") as conn:
            return pg_tasks.get_task(conn, task_id)

    def create_tasks(self, tasks: Sequence[NewTask]) -> list[Task]:
        """Store API tasks, pending."""
        ids = [new_id() for _ in tasks]
        with self._write("storing tasks") as conn:
            return pg_tasks.create_tasks(conn, tasks, time.time(), ids)

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> list[Task | None]:
        """Guarded task changes (and their quiet write plans) in one unsynced transaction."""
        now = time.time()
        with self._write("updating tasks", synced=False) as conn:
            done = pg_tasks.update_tasks(conn, updates, now)
            plans = [u.plan for u, t in zip(updates, done, strict=True) if u.plan and t]
            if plans:
                pg_writes.plan_writes(conn, plans, now)
            return done

    def task_states(self, task_ids: Collection[str]) -> dict[str, TaskState]:
        """The current state of each of these tasks."""
        with self._use("reading task states") as conn:
            return pg_tasks.task_states(conn, task_ids)

    def due_tasks(self, *, now: float, limit: int = 1000, skip: Collection[str] = ()) -> list[Task]:
        """Pending tasks whose retry time has come, oldest first, except those in ``skip``."""
        with self._use("listing due tasks") as conn:
            return pg_tasks.due_tasks(conn, now=now, limit=limit, skip=skip)

    def recover(self) -> tuple[int, int]:
        """Running tasks back to pending, busy workers back to online."""
        with self._write("recovering tasks after a stop") as conn:
            return pg_tasks.recover(conn, time.time())

    def register_node(self, node: NodeRecord) -> None:
        """Record a node starting; long-gone nodes are forgotten."""
        with self._write("registering this node") as conn:
            pg_nodes.register_node(conn, node, time.time())

    def heartbeat(self, node_id: str, *, lease: float) -> int:
        """The node's heartbeat and its tasks' leases, in one unsynced transaction."""
        with self._write("renewing this node's leases", synced=False) as conn:
            return pg_nodes.heartbeat(conn, node_id, lease, time.time())

    def stop_node(self, node_id: str) -> None:
        """Record that the node stopped cleanly."""
        with self._write("recording this node's stop") as conn:
            pg_nodes.stop_node(conn, node_id, time.time())

    def list_nodes(self) -> list[NodeRecord]:
        """Every known node, with its tasks in flight."""
        with self._use("listing nodes") as conn:
            return pg_nodes.list_nodes(conn)

    def take_back(self, *, now: float, exclude_node: str = "", limit: int = 1000) -> list[str]:
        """Running tasks whose lease ended before ``now`` back to pending; rows another
        node's sweep holds are skipped (``FOR UPDATE SKIP LOCKED``)."""
        with self._write("taking back tasks whose lease ended", synced=False) as conn:
            return pg_nodes.take_back(
                conn, before=now, exclude_node=exclude_node, limit=limit, now=time.time()
            )

    def add_timeline(self, entries: Sequence[TimelineEntry]) -> None:
        """Record timeline steps."""
        with self._write("recording the timeline", synced=False) as conn:
            pg_tasks.add_timeline(conn, entries)

    def list_timeline(self, *, limit: int = 10_000, **whose: str | None) -> list[TimelineEntry]:
        """Steps of one event, one task, or a worker's own (``event_id=``, ``task_id=``,
        ``worker=``); oldest first."""
        with self._use("reading the timeline") as conn:
            return pg_tasks.list_timeline(conn, limit=limit, **whose)

    def registry_version(self) -> int:
        """A number that changes whenever a worker is added, replaced or removed."""
        with self._use("reading the registry version") as conn:
            return pg_events.registry_version(conn)

    def close(self) -> None:
        """Close every connection; the store is unusable afterwards. Safe to call twice."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextlib.contextmanager
    def _use(self, doing: str) -> Iterator[Conn]:
        """A connection of the pool (autocommit); psycopg errors become StoreError."""
        pool = self._pool
        if pool is None:
            raise closed(self.server, doing)
        with self.server.translated(doing), pool.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self, doing: str, *, synced: bool = True) -> Iterator[Conn]:
        """One pipelined transaction: committed on success, rolled back on any error.

        ``synced=False`` commits without waiting for the server's disk
        (``synchronous_commit = off``): safe against a crash of mecha, not of the server,
        which may forget the last such commits.
        """
        with self._use(doing) as conn, conn.pipeline(), conn.transaction():
            if not synced:
                conn.execute("SET LOCAL synchronous_commit = off")
            yield conn
