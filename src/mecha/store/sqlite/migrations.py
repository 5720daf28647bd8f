"""The database schema, as an ordered list of migrations, and ``migrate`` to apply them.

Each ``Migration`` is one numbered step; ``schema_migrations`` records every step applied
(``PRAGMA user_version`` mirrors the newest, for tools that read only that). ``migrate``
applies the missing steps in order, each in its own ``BEGIN IMMEDIATE`` transaction, and
re-reads the version once it holds the write lock, so two processes opening a fresh
database at once apply each step exactly once.

To add a migration: append ``Migration(version=N + 1, name="what_it_adds", statements=(...))``
to ``MIGRATIONS``. Never edit or reorder a migration that has shipped; write a new one that
changes what it made. Keep statements plain SQL that PostgreSQL also accepts where you can
(TEXT, INTEGER, REAL; JSON kept as TEXT), and do not put BEGIN/COMMIT in them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mecha.errors import MigrationError
from mecha.store.sqlite.file import result_code, rollback


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: applied whole or not at all."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="workers",
        statements=(
            """CREATE TABLE workers (
                name TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                definition TEXT NOT NULL, -- JSON
                source TEXT NOT NULL DEFAULT '',
                state TEXT NOT NULL DEFAULT 'offline',
                error TEXT NOT NULL DEFAULT '',
                endpoint TEXT NOT NULL DEFAULT '',
                container_id TEXT NOT NULL DEFAULT '',
                started_at REAL NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
        ),
    ),
    Migration(
        version=2,
        name="events_and_tasks",
        statements=(
            """CREATE TABLE events (
                id TEXT PRIMARY KEY,
                source TEXT NOT NULL,
                delivery_id TEXT NOT NULL,
                type TEXT NOT NULL,
                actor TEXT NOT NULL DEFAULT '',
                subject TEXT NOT NULL DEFAULT '',
                attrs TEXT NOT NULL, -- JSON
                headers TEXT NOT NULL, -- JSON, without secret headers
                raw BLOB NOT NULL,
                raw_encoding TEXT NOT NULL DEFAULT 'identity', -- or zlib
                state TEXT NOT NULL,
                error TEXT NOT NULL DEFAULT '',
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE UNIQUE INDEX events_delivery ON events (source, delivery_id)",
            "CREATE INDEX events_created ON events (created_at)",
            "CREATE INDEX events_state ON events (state, created_at)",
            """CREATE TABLE event_matches (
                event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
                worker TEXT NOT NULL,
                outcome TEXT NOT NULL,
                rule INTEGER NOT NULL,
                reason TEXT NOT NULL DEFAULT '',
                task_id TEXT NOT NULL DEFAULT '',
                created_at REAL NOT NULL,
                PRIMARY KEY (event_id, worker)
            )""",
            """CREATE TABLE tasks (
                id TEXT PRIMARY KEY,
                worker TEXT NOT NULL,
                event_id TEXT NOT NULL DEFAULT '',
                dedup_key TEXT NOT NULL,
                prompt TEXT NOT NULL,
                context TEXT NOT NULL, -- JSON
                state TEXT NOT NULL,
                error TEXT NOT NULL DEFAULT '',
                attempts INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE UNIQUE INDEX tasks_dedup ON tasks (dedup_key)",
            "CREATE INDEX tasks_state ON tasks (state, created_at)",
            "CREATE INDEX tasks_event ON tasks (event_id)",
            # bumped whenever a worker definition changes: a running server reloads then
            """CREATE TABLE registry (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                version INTEGER NOT NULL
            )""",
            "INSERT INTO registry (id, version) VALUES (1, 0)",
            """CREATE TRIGGER registry_insert AFTER INSERT ON workers
               BEGIN UPDATE registry SET version = version + 1; END""",
            """CREATE TRIGGER registry_update AFTER UPDATE OF definition ON workers
               BEGIN UPDATE registry SET version = version + 1; END""",
            """CREATE TRIGGER registry_delete AFTER DELETE ON workers
               BEGIN UPDATE registry SET version = version + 1; END""",
        ),
    ),
    Migration(
        version=3,
        name="dispatch",
        statements=(
            "ALTER TABLE tasks ADD COLUMN result TEXT NOT NULL DEFAULT ''",  # JSON or ''
            "ALTER TABLE tasks ADD COLUMN next_retry_at REAL NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN dispatched_at REAL NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN finished_at REAL NOT NULL DEFAULT 0",
            "CREATE INDEX tasks_due ON tasks (state, next_retry_at)",
            "CREATE INDEX tasks_worker ON tasks (worker, created_at)",
            """CREATE TABLE timeline (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at REAL NOT NULL,
                step TEXT NOT NULL,
                event_id TEXT NOT NULL DEFAULT '',
                task_id TEXT NOT NULL DEFAULT '',
                worker TEXT NOT NULL DEFAULT '',
                detail TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX timeline_event ON timeline (event_id, id)",
            "CREATE INDEX timeline_task ON timeline (task_id, id)",
        ),
    ),
    Migration(
        version=4,
        name="write-back ledger",
        statements=(
            # one row per intended write; key = hash of (event, worker, action, target, head)
            # seq: the rowid (no AUTOINCREMENT, which costs a write per insert; rows are
            # never deleted, so it still grows in planning order)
            """CREATE TABLE writes (
                seq INTEGER PRIMARY KEY,
                key TEXT NOT NULL UNIQUE,
                task_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                worker TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                spec TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at REAL NOT NULL DEFAULT 0,
                detail TEXT NOT NULL DEFAULT '',
                remote_id TEXT NOT NULL DEFAULT '',
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE INDEX writes_due ON writes (state, next_at)",
            # a task's writes are found through its event's (a task has one event)
            "CREATE INDEX writes_event ON writes (event_id, seq)",
        ),
    ),
    Migration(
        version=5,
        name="task progress",
        statements=(
            # the running attempt's time limit in seconds (set when it starts; 0 = unknown)
            "ALTER TABLE tasks ADD COLUMN timeout REAL NOT NULL DEFAULT 0",
            # tokens of the answer received so far, where the worker's answer streams
            "ALTER TABLE tasks ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        version=6,
        name="nodes and leases",
        statements=(
            # one row per `mecha serve` started; heartbeat_at is renewed every lease/3 s
            """CREATE TABLE nodes (
                id TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                version TEXT NOT NULL DEFAULT '',
                started_at REAL NOT NULL,
                heartbeat_at REAL NOT NULL,
                stopped_at REAL NOT NULL DEFAULT 0
            )""",
            # the node that claimed the task last ('' = none: before this migration)
            "ALTER TABLE tasks ADD COLUMN node_id TEXT NOT NULL DEFAULT ''",
            # a running task's claim holds until then (unix seconds; 0 = no lease)
            "ALTER TABLE tasks ADD COLUMN lease_until REAL NOT NULL DEFAULT 0",
            "CREATE INDEX tasks_node ON tasks (node_id, state)",
        ),
    ),
    Migration(
        version=7,
        name="write leases and worker limits across nodes",
        statements=(
            # the node calling the write now ('' = none), and until when its claim holds
            "ALTER TABLE writes ADD COLUMN node_id TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE writes ADD COLUMN lease_until REAL NOT NULL DEFAULT 0",
            # a worker's tasks in flight are counted at each claim
            "CREATE INDEX tasks_worker_state ON tasks (worker, state)",
            # each worker's token bucket (its rate_limit) shared by every node; the row is
            # locked by a claim, so claims of one worker take turns
            """CREATE TABLE paces (
                worker TEXT PRIMARY KEY,
                tokens REAL NOT NULL,
                at REAL NOT NULL
            )""",
        ),
    ),
    Migration(
        version=8,
        name="flow keys and superseded tasks",
        statements=(
            # the task's worker's flow.key, rendered ('' = none), and when its event arrived
            "ALTER TABLE tasks ADD COLUMN flow_key TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE tasks ADD COLUMN flow_at REAL NOT NULL DEFAULT 0",
            # the task that replaced it ('' = none)
            "ALTER TABLE tasks ADD COLUMN superseded_by TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX tasks_flow ON tasks (worker, flow_key, state) WHERE flow_key <> ''",
        ),
    ),
    Migration(
        version=9,
        name="budgets",
        statements=(
            # one row per reserved attempt (mecha.budget): open at its estimate, then
            # settled at what it used; a send that never happened leaves no row
            """CREATE TABLE budget_ledger (
                id TEXT PRIMARY KEY, -- the reservation's ticket
                task_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                worker TEXT NOT NULL,
                at REAL NOT NULL,
                reserved INTEGER NOT NULL,
                used INTEGER NOT NULL DEFAULT 0,
                state TEXT NOT NULL -- open or settled
            )""",
            "CREATE INDEX budget_ledger_task ON budget_ledger (task_id, attempt)",
            # a window's sums and counts read these alone (a worker's, or all workers')
            "CREATE INDEX budget_ledger_worker "
            "ON budget_ledger (worker, at, state, reserved, used)",
            "CREATE INDEX budget_ledger_at ON budget_ledger (at, state, reserved, used)",
            # the few rows still open: what is in flight
            "CREATE INDEX budget_ledger_open ON budget_ledger (state, worker, at)",
            # tasks over budget: since when they wait (budget_wait), and on which budget
            """CREATE TABLE budget_waits (
                task_id TEXT PRIMARY KEY,
                worker TEXT NOT NULL,
                scope TEXT NOT NULL,
                kind TEXT NOT NULL,
                since REAL NOT NULL
            )""",
            "CREATE INDEX budget_waits_scope ON budget_waits (scope)",
        ),
    ),
    Migration(
        version=10,
        name="pull request columns",
        statements=(
            # the event's number and head_sha attributes as columns, so a pull request's
            # events are found by an index without reading JSON (incremental review's
            # Store.last_reviewed_head). Events stored before are left at 0 and ''
            "ALTER TABLE events ADD COLUMN number INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE events ADD COLUMN head_sha TEXT NOT NULL DEFAULT ''",
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
            "ALTER TABLE events ADD COLUMN title TEXT NOT NULL DEFAULT ''",
            "UPDATE events SET title = json_extract(attrs, '$.title') "
            "WHERE json_type(attrs, '$.title') = 'text'",
            # what a search reads: those fields, one a line, lowercased (by Python's lower
            # from now on; SQLite's lower, which folds ASCII letters only, for events before)
            "ALTER TABLE events ADD COLUMN search_text TEXT NOT NULL DEFAULT ''",
            "UPDATE events SET search_text = lower(type || char(10) || actor || char(10) || "
            "subject || char(10) || delivery_id || char(10) || title)",
            # the decision's event's created_at: a worker's events paged by an index alone
            "ALTER TABLE event_matches ADD COLUMN event_at REAL NOT NULL DEFAULT 0",
            "UPDATE event_matches SET event_at = coalesce("
            "(SELECT created_at FROM events WHERE events.id = event_matches.event_id), 0)",
            # pages newest first by (created_at, id), whole or by state, source or repository.
            # events_page holds search_text too: a search reads the index (~15 MB for
            # 100,000 events), not the rows with their bodies (~40 times more)
            "CREATE INDEX events_page ON events (created_at, id, search_text)",
            "CREATE INDEX events_state_page ON events (state, created_at, id)",
            # they hold what events_created and events_state did (list_events sorts only
            # the ties of one created_at by rowid); every index costs each stored event
            "DROP INDEX events_created",
            "DROP INDEX events_state",
            # a source filter reads events_page (a few sources; each is common): no index
            # of its own, which would cost every webhook
            "CREATE INDEX events_subject_page ON events (subject, created_at, id)",
            "CREATE INDEX matches_worker ON event_matches (worker, event_at, event_id) "
            "WHERE task_id <> ''",
            # the tasks page: newest first, ties as made (the rowid ends every index)
            "CREATE INDEX tasks_page ON tasks (created_at)",
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
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at REAL NOT NULL
)"""


def migrate(conn: sqlite3.Connection, *, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database on ``conn`` (autocommit mode) up to date; return its version.

    MigrationError if the database is newer than ``migrations`` know, is not a Mecha
    database, or a step fails (that step is rolled back; earlier ones stay applied).
    sqlite3 errors outside a step (reading the version) propagate to the caller.
    """
    latest = migrations[-1].version if migrations else 0
    version = _checked_version(conn, latest)
    for migration in migrations:
        if migration.version > version:
            version = max(version, _apply(conn, migration, latest))
    return version


def current_version(conn: sqlite3.Connection) -> int:
    """The newest applied migration (0 for a database without ``schema_migrations``)."""
    if not _has_tracking_table(conn):
        return 0
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def _checked_version(conn: sqlite3.Connection, latest: int) -> int:
    """The current version; MigrationError if it is newer than ``latest``."""
    version = current_version(conn)
    marked = int(conn.execute("PRAGMA user_version").fetchone()[0])
    newest = max(version, marked)
    if newest > latest:
        raise MigrationError(
            f"the database is at schema version {newest}, "
            f"but this mecha knows versions up to {latest} only",
            hint="upgrade mecha (a newer release wrote this database), "
            "or set MECHA_DB_PATH to use another database",
        )
    return version


def _apply(conn: sqlite3.Connection, migration: Migration, latest: int) -> int:
    """Apply ``migration`` unless another process did first; return the version after."""
    label = f"migration {migration.version} ({migration.name})"
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _locked_version(conn, latest)
            if version < migration.version:
                for statement in migration.statements:
                    conn.execute(statement)
                _record(conn, migration)
                version = migration.version
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
    except sqlite3.Error as exc:
        raise _failed(label, exc) from exc
    return version


def _locked_version(conn: sqlite3.Connection, latest: int) -> int:
    """Under the write lock: refuse a foreign database, make sure tracking exists, re-read."""
    if not _has_tracking_table(conn):
        foreign = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        if foreign:
            raise MigrationError(
                f"the database holds tables ({', '.join(foreign)}) but no schema_migrations "
                "table, so it is not a Mecha database",
                hint="set MECHA_DB_PATH to another file, or move this one away",
            )
        conn.execute(_TRACKING_TABLE)
    return _checked_version(conn, latest)


def _record(conn: sqlite3.Connection, migration: Migration) -> None:
    conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.name, time.time()),
    )
    # PRAGMA takes no parameters; version is an int from our own list
    conn.execute(f"PRAGMA user_version = {int(migration.version)}")


def _has_tracking_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    return row is not None


def _failed(label: str, exc: sqlite3.Error) -> MigrationError:
    """The MigrationError for a step that raised ``exc`` and was rolled back."""
    if result_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        hint = "another mecha process holds the database; let it finish, then run mecha again"
    else:
        hint = (
            "nothing of this migration was applied; check free disk space and the file's "
            "permissions and run mecha again; if it fails again, report it with this message"
        )
    return MigrationError(f"{label} failed and was rolled back: {exc}", hint=hint)
