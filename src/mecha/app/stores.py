"""Opening the store from settings: ``open_store``, ``open_prune_store``, ``empty_store``.

The one place that knows which database is behind the ``Store`` Protocol: SQLite at
``settings.db_path`` today (``mecha.store.sqlite``: created 0600 in a 0700 folder, WAL,
migrated on open). Every command opens it here, so another backend is chosen here only.
"""

from __future__ import annotations

from mecha.config.settings import Settings
from mecha.store import Store
from mecha.store.pruning import PruneStore


def open_store(settings: Settings) -> Store:
    """The database, created and migrated as needed."""
    from mecha.store.sqlite.store import open_sqlite

    return open_sqlite(settings.db_path)


def open_prune_store(settings: Settings) -> PruneStore:
    """The database on a connection of its own, for pruning (`mecha prune`)."""
    from mecha.store.sqlite.store import open_sqlite

    return open_sqlite(settings.db_path)


def empty_store(settings: Settings) -> Store:
    """A migrated store in memory: what a read finds before anything was stored.

    Nothing is created on disk; ``settings.db_path`` is only the path it names.
    """
    import sqlite3

    from mecha.store.sqlite.migrations import migrate
    from mecha.store.sqlite.store import SqliteStore

    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    migrate(conn)
    return SqliteStore(conn, settings.db_path)
