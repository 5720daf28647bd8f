"""Opening the store from settings: ``open_store``, ``open_prune_store``, ``empty_store``.

The one place that knows which database is behind the ``Store`` Protocol, chosen by
``mecha.config.database`` (``settings.database``; chosen here from the environment,
config.yml and secrets.yml if the caller has not): SQLite at ``settings.db_path``
(``mecha.store.sqlite``: created 0600 in a 0700 folder, WAL, migrated on open), or
PostgreSQL at ``MECHA_DATABASE_URL`` / ``database_url:`` (``mecha.store.postgres``,
migrated on open; psycopg is imported only then). Every command opens it here.

Besides opening: ``open_existing_store`` (read-only commands: None when there is no
database yet), ``schema_state`` (its version, read without migrating, and this Mecha's),
``migrate_store`` (``mecha db migrate``), ``copy_to_postgres`` (``mecha db copy``) and
``describe`` (what to call it, no password); ``listen_for_nodes`` (PostgreSQL's wake-ups
between nodes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mecha.config.database import Database, PostgresTarget
from mecha.config.settings import Settings, choose_database
from mecha.errors import StoreError
from mecha.store import Store
from mecha.store.pruning import PruneStore

if TYPE_CHECKING:
    from pathlib import Path

    from mecha.store.copy import CopyReport, Progress
    from mecha.store.postgres.store import PostgresStore

PIP_HINT = "install it: pip install 'mecha-engine[postgres]' (psycopg 3 and its pool)"


def database(settings: Settings) -> Database:
    """The database ``settings`` chose, or the one the environment and files choose now."""
    return settings.database or choose_database(settings, os.environ)


def describe(settings: Settings) -> str:
    """What to call the database in messages: its file, or its PostgreSQL URL (no password)."""
    chosen = database(settings)
    if chosen.postgres is not None:
        return f"PostgreSQL {chosen.postgres.shown}"
    return settings.shown(chosen.path)


def open_store(settings: Settings) -> Store:
    """The database, created and migrated as needed."""
    chosen = database(settings)
    if chosen.postgres is not None:
        return _open_postgres(chosen.postgres, migrate=True)
    from mecha.store.sqlite.store import open_sqlite

    return open_sqlite(chosen.path)


def open_prune_store(settings: Settings) -> PruneStore:
    """The database on a connection of its own, for pruning (`mecha prune`)."""
    chosen = database(settings)
    if chosen.postgres is not None:
        return _open_postgres(chosen.postgres, migrate=True)
    from mecha.store.sqlite.store import open_sqlite

    return open_sqlite(chosen.path)


def empty_store(settings: Settings) -> Store:
    """A migrated store in memory: what a read finds before anything was stored.

    Nothing is created on disk or on a server; ``settings.db_path`` is only the path it
    names (whichever database is chosen: an empty one reads the same).
    """
    import sqlite3

    from mecha.store.sqlite.migrations import migrate
    from mecha.store.sqlite.store import SqliteStore

    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    migrate(conn)
    return SqliteStore(conn, settings.db_path)


def exists(settings: Settings) -> bool:
    """Whether the database is there yet, without making it: SQLite's file exists, or the
    PostgreSQL database holds Mecha's tables (this connects to it)."""
    chosen = database(settings)
    if chosen.postgres is None:
        return chosen.path.exists()
    return schema_state(settings).version > 0


def open_existing_store(settings: Settings) -> Store | None:
    """The database if it is there (migrated, as every open does), else None: for commands
    that only read and must not create it (SQLite: no file; PostgreSQL: no tables yet)."""
    chosen = database(settings)
    if chosen.postgres is None:
        return open_store(settings) if chosen.path.exists() else None
    store = _open_postgres(chosen.postgres, migrate=False)
    try:
        version = store.schema_version()
    except BaseException:
        store.close()
        raise
    if version == 0:
        store.close()
        return None
    if version == _postgres_latest():
        return store
    store.close()
    return open_store(settings)  # older: migrated as at every start; newer: refused


@dataclass(frozen=True)
class SchemaState:
    """The schema version a database is at (0: no database or no tables yet) and the
    newest this Mecha knows."""

    version: int
    latest: int
    #: SQLite: the file is there; PostgreSQL: the server answered
    present: bool


def schema_state(settings: Settings) -> SchemaState:
    """The database's schema version, read without creating or migrating anything.

    StoreError if it cannot be read (PostgreSQL not answering, a file that is not a
    database); for PostgreSQL, StoreError naming ``pip install 'mecha-engine[postgres]'`` if
    psycopg is missing.
    """
    chosen = database(settings)
    if chosen.postgres is not None:
        store = _open_postgres(chosen.postgres, migrate=False)
        try:
            return SchemaState(store.schema_version(), _postgres_latest(), present=True)
        finally:
            store.close()
    from mecha.store.sqlite.migrations import LATEST_VERSION

    if not chosen.path.exists():
        return SchemaState(0, LATEST_VERSION, present=False)
    return SchemaState(_sqlite_version(chosen), LATEST_VERSION, present=True)


def migrate_store(settings: Settings) -> tuple[SchemaState, int]:
    """Bring the database up to date (creating it if need be): its state before, and the
    version after. MigrationError if it is newer than this Mecha or a step fails."""
    before = schema_state(settings)
    store = open_store(settings)
    try:
        after = store.schema_version()
    finally:
        store.close()
    return before, after


def copy_to_postgres(
    settings: Settings,
    target: PostgresTarget,
    *,
    source: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> CopyReport:
    """`mecha db copy`: the SQLite database at ``source`` (``settings.db_path`` unless
    given) copied whole into ``target``, migrated first (``mecha.store.copy``). StoreError
    naming ``pip install 'mecha-engine[postgres]'`` if psycopg is missing."""
    try:
        from mecha.store.copy import copy_sqlite_to_postgres
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StoreError(
            f"copying into PostgreSQL ({target.shown}) needs psycopg, its driver, which is "
            "not installed",
            hint=PIP_HINT,
        ) from None
    return copy_sqlite_to_postgres(source or settings.db_path, target.url(), progress=progress)


def _sqlite_version(chosen: Database) -> int:
    import sqlite3

    from mecha.store.sqlite.file import translated
    from mecha.store.sqlite.migrations import current_version

    with translated(chosen.path, "reading its schema version"):
        conn = sqlite3.connect(f"{chosen.path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            return max(current_version(conn), _user_version(conn))
        finally:
            conn.close()


def listen_for_nodes(
    store: Store, heard: Callable[[], None], node: str = ""
) -> Callable[[], None] | None:
    """On PostgreSQL: call ``heard`` (from a thread) whenever another node than ``node``
    may have freed a slot or made a task (``mecha.store.postgres.listen``); what stops it. None on a
    database one serve owns (SQLite): no other node is there to hear."""
    if "mecha.store.postgres.store" not in sys.modules:  # psycopg was never imported
        return None
    from mecha.store.postgres.listen import Listener
    from mecha.store.postgres.store import PostgresStore

    if not isinstance(store, PostgresStore):
        return None
    listener = Listener(store.server, heard, node)
    listener.start()
    return listener.close


def _user_version(conn: Any) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _open_postgres(target: PostgresTarget, *, migrate: bool) -> PostgresStore:
    """``open_postgres``; StoreError naming the extra to install if psycopg is missing."""
    try:
        from mecha.store.postgres.store import open_postgres
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StoreError(
            f"{target.origin or 'the settings'} chooses PostgreSQL ({target.shown}), but "
            "psycopg, its driver, is not installed",
            hint=PIP_HINT,
        ) from None
    return open_postgres(target.url(), migrate=migrate)


def _postgres_latest() -> int:
    from mecha.store.postgres.migrations import LATEST_VERSION

    return LATEST_VERSION
