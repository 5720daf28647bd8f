"""The PostgreSQL schema, as ordered migrations, and ``migrate`` to apply them.

The same steps, numbers and names as SQLite's (``mecha.store.sqlite.migrations``), written
for PostgreSQL: times are ``double precision`` unix seconds, JSON is kept as the text
Mecha wrote (``attrs`` as ``json``, which keeps it as written and lets a brief pick keys),
raw bodies are ``bytea``, ids and names compare byte by byte (``COLLATE "C"``, as SQLite
does), and rows that SQLite orders by rowid get a ``bigserial`` ``seq``.

``migrate`` holds a session advisory lock on a fixed key while it reads the version and
applies the missing steps, each in its own transaction, so two nodes starting at once
apply each step exactly once; the second waits, then finds nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from mecha.errors import MigrationError

#: the advisory lock every mecha holds while it migrates ("mecha" in ASCII)
LOCK_KEY = 0x6D65636861
#: seconds a node waits for another node's migration before it gives up
LOCK_WAIT = 120


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: applied whole or not at all."""

    version: int
    name: str
    statements: tuple[str, ...]


_C = 'COLLATE "C"'
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="workers",
        statements=(
            f"""CREATE TABLE workers (
                name text {_C} PRIMARY KEY,
                kind text NOT NULL,
                definition text NOT NULL,
                source text NOT NULL DEFAULT '',
                state text NOT NULL DEFAULT 'offline',
                error text NOT NULL DEFAULT '',
                endpoint text NOT NULL DEFAULT '',
                container_id text NOT NULL DEFAULT '',
                started_at double precision NOT NULL DEFAULT 0,
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL
            )""",
        ),
    ),
    Migration(
        version=2,
        name="events_and_tasks",
        statements=(
            f"""CREATE TABLE events (
                id text {_C} PRIMARY KEY,
                seq bigserial NOT NULL,
                source text {_C} NOT NULL,
                delivery_id text {_C} NOT NULL,
                type text NOT NULL,
                actor text NOT NULL DEFAULT '',
                subject text NOT NULL DEFAULT '',
                attrs json NOT NULL,
                headers text NOT NULL,
                raw bytea NOT NULL,
                raw_encoding text NOT NULL DEFAULT 'identity',
                state text NOT NULL,
                error text NOT NULL DEFAULT '',
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL
            )""",
            "ALTER TABLE events ALTER COLUMN raw SET STORAGE EXTERNAL",  # zlib'd already
            # the dedupe of every node: ON CONFLICT (source, delivery_id) DO NOTHING
            "CREATE UNIQUE INDEX events_delivery ON events (source, delivery_id)",
            "CREATE INDEX events_created ON events (created_at, seq)",
            "CREATE INDEX events_state ON events (state, created_at, seq)",
            f"""CREATE TABLE event_matches (
                event_id text {_C} NOT NULL REFERENCES events (id) ON DELETE CASCADE,
                worker text {_C} NOT NULL,
                outcome text NOT NULL,
                rule integer NOT NULL,
                reason text NOT NULL DEFAULT '',
                task_id text NOT NULL DEFAULT '',
                created_at double precision NOT NULL,
                PRIMARY KEY (event_id, worker)
            )""",
            f"""CREATE TABLE tasks (
                id text {_C} PRIMARY KEY,
                seq bigserial NOT NULL,
                worker text {_C} NOT NULL,
                event_id text {_C} NOT NULL DEFAULT '',
                dedup_key text {_C} NOT NULL,
                prompt text NOT NULL,
                context text NOT NULL,
                state text NOT NULL,
                error text NOT NULL DEFAULT '',
                attempts integer NOT NULL DEFAULT 0,
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL
            )""",
            "CREATE UNIQUE INDEX tasks_dedup ON tasks (dedup_key)",
            "CREATE INDEX tasks_state ON tasks (state, created_at, seq)",
            "CREATE INDEX tasks_event ON tasks (event_id)",
            # bumped whenever a worker definition changes: a running server reloads then
            """CREATE TABLE registry (
                id integer PRIMARY KEY CHECK (id = 1),
                version bigint NOT NULL
            )""",
            "INSERT INTO registry (id, version) VALUES (1, 0)",
            """CREATE FUNCTION mecha_registry_bump() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN UPDATE registry SET version = version + 1; RETURN NULL; END $$""",
            """CREATE TRIGGER registry_insert AFTER INSERT ON workers
               FOR EACH ROW EXECUTE FUNCTION mecha_registry_bump()""",
            """CREATE TRIGGER registry_update AFTER UPDATE OF definition ON workers
               FOR EACH ROW EXECUTE FUNCTION mecha_registry_bump()""",
            """CREATE TRIGGER registry_delete AFTER DELETE ON workers
               FOR EACH ROW EXECUTE FUNCTION mecha_registry_bump()""",
        ),
    ),
    Migration(
        version=3,
        name="dispatch",
        statements=(
            "ALTER TABLE tasks ADD COLUMN result text NOT NULL DEFAULT ''",
            "ALTER TABLE tasks ADD COLUMN next_retry_at double precision NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN dispatched_at double precision NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN finished_at double precision NOT NULL DEFAULT 0",
            "CREATE INDEX tasks_due ON tasks (state, next_retry_at)",
            "CREATE INDEX tasks_worker ON tasks (worker, created_at, seq)",
            f"""CREATE TABLE timeline (
                id bigserial PRIMARY KEY,
                at double precision NOT NULL,
                step text NOT NULL,
                event_id text {_C} NOT NULL DEFAULT '',
                task_id text {_C} NOT NULL DEFAULT '',
                worker text {_C} NOT NULL DEFAULT '',
                detail text NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX timeline_event ON timeline (event_id, id)",
            "CREATE INDEX timeline_task ON timeline (task_id, id)",
        ),
    ),
    Migration(
        version=4,
        name="write-back ledger",
        statements=(
            f"""CREATE TABLE writes (
                seq bigserial PRIMARY KEY,
                key text {_C} NOT NULL UNIQUE,
                task_id text {_C} NOT NULL,
                event_id text {_C} NOT NULL,
                worker text NOT NULL,
                action text NOT NULL,
                target text NOT NULL,
                spec text NOT NULL,
                state text NOT NULL,
                attempts integer NOT NULL DEFAULT 0,
                next_at double precision NOT NULL DEFAULT 0,
                detail text NOT NULL DEFAULT '',
                remote_id text NOT NULL DEFAULT '',
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL
            )""",
            "CREATE INDEX writes_due ON writes (state, next_at)",
            "CREATE INDEX writes_event ON writes (event_id, seq)",
        ),
    ),
    Migration(
        version=5,
        name="task progress",
        statements=(
            "ALTER TABLE tasks ADD COLUMN timeout double precision NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN tokens integer NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        version=6,
        name="nodes and leases",
        statements=(
            f"""CREATE TABLE nodes (
                id text {_C} PRIMARY KEY,
                host text NOT NULL,
                pid integer NOT NULL,
                version text NOT NULL DEFAULT '',
                started_at double precision NOT NULL,
                heartbeat_at double precision NOT NULL,
                stopped_at double precision NOT NULL DEFAULT 0
            )""",
            f"ALTER TABLE tasks ADD COLUMN node_id text {_C} NOT NULL DEFAULT ''",
            "ALTER TABLE tasks ADD COLUMN lease_until double precision NOT NULL DEFAULT 0",
            "CREATE INDEX tasks_node ON tasks (node_id, state)",
        ),
    ),
    Migration(
        version=7,
        name="write leases and worker limits across nodes",
        statements=(
            f"ALTER TABLE writes ADD COLUMN node_id text {_C} NOT NULL DEFAULT ''",
            "ALTER TABLE writes ADD COLUMN lease_until double precision NOT NULL DEFAULT 0",
            "CREATE INDEX tasks_worker_state ON tasks (worker, state)",
            f"""CREATE TABLE paces (
                worker text {_C} PRIMARY KEY,
                tokens double precision NOT NULL,
                at double precision NOT NULL
            )""",
        ),
    ),
    Migration(
        version=8,
        name="flow keys and superseded tasks",
        statements=(
            f"ALTER TABLE tasks ADD COLUMN flow_key text {_C} NOT NULL DEFAULT ''",
            "ALTER TABLE tasks ADD COLUMN flow_at double precision NOT NULL DEFAULT 0",
            f"ALTER TABLE tasks ADD COLUMN superseded_by text {_C} NOT NULL DEFAULT ''",
            "CREATE INDEX tasks_flow ON tasks (worker, flow_key, state) WHERE flow_key <> ''",
        ),
    ),
    Migration(
        version=9,
        name="budgets",
        statements=(
            f"""CREATE TABLE budget_ledger (
                id text {_C} PRIMARY KEY,
                task_id text {_C} NOT NULL,
                attempt integer NOT NULL,
                worker text {_C} NOT NULL,
                at double precision NOT NULL,
                reserved bigint NOT NULL,
                used bigint NOT NULL DEFAULT 0,
                state text NOT NULL
            )""",
            "CREATE INDEX budget_ledger_task ON budget_ledger (task_id, attempt)",
            # a window's sums and counts read these alone (a worker's, or all workers')
            "CREATE INDEX budget_ledger_worker "
            "ON budget_ledger (worker, at, state, reserved, used)",
            "CREATE INDEX budget_ledger_at ON budget_ledger (at, state, reserved, used)",
            # the few rows still open: what is in flight
            "CREATE INDEX budget_ledger_open ON budget_ledger (state, worker, at)",
            f"""CREATE TABLE budget_waits (
                task_id text {_C} PRIMARY KEY,
                worker text {_C} NOT NULL,
                scope text {_C} NOT NULL,
                kind text NOT NULL,
                since double precision NOT NULL
            )""",
            "CREATE INDEX budget_waits_scope ON budget_waits (scope)",
        ),
    ),
    Migration(
        version=10,
        name="pull request columns",
        statements=(
            "ALTER TABLE events ADD COLUMN number bigint NOT NULL DEFAULT 0",
            "ALTER TABLE events ADD COLUMN head_sha text NOT NULL DEFAULT ''",
            "CREATE INDEX events_pull ON events (source, subject, number)",
        ),
    ),
    Migration(
        version=11,
        name="comment caps",
        statements=(
            # policy.comment.max_per_hour counts a worker's comments on one thread in an hour
            "CREATE INDEX writes_thread ON writes (target, worker, action, created_at)",
        ),
    ),
    Migration(
        version=12,
        name="dashboard pages",
        statements=(
            # the title attribute as a column: a page shows and searches it without JSON
            "ALTER TABLE events ADD COLUMN title text NOT NULL DEFAULT ''",
            "UPDATE events SET title = attrs ->> 'title' "
            "WHERE json_typeof(attrs -> 'title') = 'string'",
            # what a search reads: those fields, one a line, lowercased (by Python's lower
            # from now on; PostgreSQL's for the events before)
            "ALTER TABLE events ADD COLUMN search_text text NOT NULL DEFAULT ''",
            "UPDATE events SET search_text = lower(type || E'\\n' || actor || E'\\n' || "
            "subject || E'\\n' || delivery_id || E'\\n' || title)",
            # the decision's event's created_at: a worker's events paged by an index alone
            "ALTER TABLE event_matches ADD COLUMN event_at double precision NOT NULL DEFAULT 0",
            "UPDATE event_matches SET event_at = coalesce("
            "(SELECT created_at FROM events WHERE events.id = event_matches.event_id), 0)",
            # pages newest first by (created_at, id), whole or by state, source or repository
            "CREATE INDEX events_page ON events (created_at, id)",
            "CREATE INDEX events_state_page ON events (state, created_at, id)",
            # a source filter reads events_page (a few sources; each is common): no index
            # of its own, which would cost every webhook
            "CREATE INDEX events_subject_page ON events (subject, created_at, id)",
            "CREATE INDEX matches_worker ON event_matches (worker, event_at, event_id) "
            "WHERE task_id <> ''",
            # the tasks page: newest first, ties as made
            "CREATE INDEX tasks_page ON tasks (created_at, seq)",
            # live updates: what changed after a time
            "CREATE INDEX events_changed ON events (updated_at, id)",
            "CREATE INDEX tasks_changed ON tasks (updated_at, id)",
            # worker figures; it holds what tasks_worker_state (worker, state) did
            "CREATE INDEX tasks_figures ON tasks (worker, state, finished_at, created_at)",
            "DROP INDEX tasks_worker_state",
            "CREATE INDEX writes_failed ON writes (updated_at, key) "
            "WHERE state IN ('failed', 'dead-letter')",
        ),
    ),
)

#: the version a database is at once every migration here is applied
LATEST_VERSION = MIGRATIONS[-1].version

_TRACKING_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at double precision NOT NULL
)"""
Conn = psycopg.Connection[Any]


def migrate(conn: Conn, *, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database on ``conn`` (autocommit mode) up to date; return its version.

    Holds the advisory lock ``LOCK_KEY`` throughout, so another node migrating at the same
    time waits (up to ``LOCK_WAIT`` s) and then finds the steps applied. MigrationError if
    the database is newer than ``migrations`` know, is not a Mecha database, or a step
    fails (that step is rolled back; earlier ones stay applied).
    """
    latest = migrations[-1].version if migrations else 0
    _lock(conn)
    try:
        version = _checked_version(conn, latest)
        if version < latest:
            _track(conn)
        for migration in migrations:
            if migration.version > version:
                _apply(conn, migration)
                version = migration.version
        return version
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def current_version(conn: Conn) -> int:
    """The newest applied migration (0 for a database without ``schema_migrations``)."""
    if not _has_tracking_table(conn):
        return 0
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0) if row else 0


def _lock(conn: Conn) -> None:
    conn.execute(f"SET lock_timeout = '{int(LOCK_WAIT)}s'")
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    except pg_errors.LockNotAvailable as exc:
        raise MigrationError(
            f"another mecha process has been migrating the database for {LOCK_WAIT} s",
            hint="let it finish (or stop it), then run mecha again",
        ) from exc
    finally:
        conn.execute("RESET lock_timeout")


def _checked_version(conn: Conn, latest: int) -> int:
    """The current version; MigrationError if it is newer than ``latest``."""
    version = current_version(conn)
    if version > latest:
        raise MigrationError(
            f"the database is at schema version {version}, "
            f"but this mecha knows versions up to {latest} only",
            hint="upgrade mecha (a newer release wrote this database), "
            "or set MECHA_DATABASE_URL to use another database",
        )
    return version


def _track(conn: Conn) -> None:
    """Refuse a foreign database; make sure ``schema_migrations`` exists."""
    if _has_tracking_table(conn):
        return
    foreign = [
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name"
        )
    ]
    if foreign:
        raise MigrationError(
            f"the database holds tables ({', '.join(foreign)}) but no schema_migrations "
            "table, so it is not a Mecha database",
            hint="set MECHA_DATABASE_URL to another database, or empty this one",
        )
    conn.execute(_TRACKING_TABLE)


def _apply(conn: Conn, migration: Migration) -> None:
    """Apply ``migration`` in one transaction (DDL included: PostgreSQL rolls it back)."""
    try:
        with conn.transaction():
            for statement in migration.statements:
                conn.execute(statement.encode())  # our own constant DDL
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.name, time.time()),
            )
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.OperationalError):
            raise  # the connection failed: the caller says so
        raise MigrationError(
            f"migration {migration.version} ({migration.name}) failed and was rolled back: {exc}",
            hint="nothing of this migration was applied; check that the user may create "
            "tables in this database and run mecha again; if it fails again, report it",
        ) from exc


def _has_tracking_table(conn: Conn) -> bool:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    return bool(row and row[0])
