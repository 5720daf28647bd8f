"""SqliteStore and the migrations on real SQLite files: what only SQLite has (migrations,
file modes, WAL, its errors, what the file holds). What every store does is checked on
each of them in ``tests/integration/store``."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mecha.errors import MigrationError, StoreError
from mecha.store.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
from mecha.store.sqlite.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    current_version,
    migrate,
)
from mecha.store.sqlite.store import SqliteStore, open_sqlite
from tests.integration.store.stores import names, worker

# A child process that waits for the go file, then opens the database and prints its version.
OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
from mecha.store.sqlite.store import open_sqlite
print("ready", flush=True)
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
store = open_sqlite(Path(sys.argv[1]))
print(store.schema_version(), flush=True)
store.close()
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "mecha.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    opened = open_sqlite(db_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection (autocommit) to look at or tamper with the file."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def applied(path: Path) -> list[tuple[Any, ...]]:
    with raw(path) as conn:
        return conn.execute("SELECT * FROM schema_migrations ORDER BY version").fetchall()


# ---------------------------------------------------------------- migrations


def test_an_empty_database_is_migrated_to_the_newest_version(db_path: Path) -> None:
    """A fresh file gets every table and one schema_migrations row per migration."""
    with contextlib.closing(open_sqlite(db_path)) as store:
        assert store.schema_version() == LATEST_VERSION
    with raw(db_path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert {"workers", "schema_migrations"} <= tables
    assert [row[:2] for row in applied(db_path)] == [(m.version, m.name) for m in MIGRATIONS]
    assert user_version == LATEST_VERSION


def test_reopening_keeps_data_and_applies_nothing_again(db_path: Path) -> None:
    """A second open finds the workers and leaves schema_migrations as it was."""
    with contextlib.closing(open_sqlite(db_path)) as store:
        store.add_workers([worker("kept")])
    before = applied(db_path)
    with contextlib.closing(open_sqlite(db_path)) as store:
        assert names(store) == ["kept"]
    assert applied(db_path) == before


def test_a_database_from_a_newer_mecha_is_refused(db_path: Path) -> None:
    """A schema_migrations row past the newest known version gives MigrationError."""
    open_sqlite(db_path).close()
    with raw(db_path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(MigrationError) as caught:
        open_sqlite(db_path)
    assert "schema version 99" in caught.value.message
    assert f"up to {LATEST_VERSION} only" in caught.value.message
    assert "upgrade mecha" in caught.value.hint


def test_a_newer_user_version_alone_is_refused(db_path: Path) -> None:
    """PRAGMA user_version past the newest known version also gives MigrationError."""
    open_sqlite(db_path).close()
    with raw(db_path) as conn:
        conn.execute("PRAGMA user_version = 42")
    with pytest.raises(MigrationError, match="schema version 42"):
        open_sqlite(db_path)


def test_a_failing_migration_is_rolled_back_and_named(tmp_path: Path) -> None:
    """A step that fails halfway leaves nothing of itself and names itself in the error."""
    steps = ("CREATE TABLE half_done (x INTEGER)", "CREATE TABLE oops (")
    broken = Migration(version=LATEST_VERSION + 1, name="broken", statements=steps)
    with raw(tmp_path / "m.db") as conn:
        with pytest.raises(MigrationError, match=f"migration {broken.version} \\(broken\\)"):
            migrate(conn, migrations=(*MIGRATIONS, broken))
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert current_version(conn) == LATEST_VERSION
        assert not conn.in_transaction
    assert "half_done" not in tables
    assert "workers" in tables


def test_migrations_are_numbered_one_up_and_named_once() -> None:
    """Versions are 1, 2, 3, … in list order and names are unique; PostgreSQL's list has the
    same steps."""
    versions = [m.version for m in MIGRATIONS]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert len({m.name for m in MIGRATIONS}) == len(MIGRATIONS)
    assert [(m.version, m.name) for m in MIGRATIONS] == [(m.version, m.name) for m in PG_MIGRATIONS]


def test_a_gap_in_the_numbers_is_migrated_over(tmp_path: Path) -> None:
    """A database at 7 takes the budgets step (9) with no step 8 in the list, and one at 9
    is up to date; an 8 added later (another branch) goes in before 9 for new databases."""
    upto7 = tuple(m for m in MIGRATIONS if m.version <= 7)
    with raw(tmp_path / "m.db") as conn:
        assert migrate(conn, migrations=upto7) == 7
        assert migrate(conn) == LATEST_VERSION
        applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
        assert applied == [m.version for m in MIGRATIONS]
        conn.execute("SELECT id, task_id, attempt FROM budget_ledger").fetchall()
        assert migrate(conn) == LATEST_VERSION  # nothing left to do


def test_a_sqlite_file_of_another_program_is_refused(db_path: Path) -> None:
    """Tables without schema_migrations mean another program's database: MigrationError."""
    db_path.parent.mkdir()
    with raw(db_path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(MigrationError, match="photos"):
        open_sqlite(db_path)
    with raw(db_path) as conn:
        assert current_version(conn) == 0


def test_two_processes_opening_a_fresh_database_migrate_it_once(tmp_path: Path) -> None:
    """Processes racing to open a new file all succeed; each migration is recorded once."""
    db, go = tmp_path / "race" / "mecha.db", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_WHEN_TOLD, str(db), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        go.touch()
        results = [(proc.communicate(timeout=60), proc.returncode) for proc in procs]
    finally:
        for proc in procs:  # on any failure above: no child left running, no pipe left open
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
    for (out, err), code in results:
        assert (code, out, err) == (0, f"{LATEST_VERSION}\n", "")
    assert [row[:2] for row in applied(db)] == [(m.version, m.name) for m in MIGRATIONS]


# ---------------------------------------------------------------- files and modes


@pytest.mark.usefixtures("permissive_umask")
def test_folders_are_0700_and_the_file_0600_whatever_the_umask(tmp_path: Path) -> None:
    """Missing folders (parents too) are made 0700 and the database 0600 under umask 0."""
    path = tmp_path / "a" / "b" / "mecha.db"
    open_sqlite(path).close()
    assert (mode(tmp_path / "a"), mode(tmp_path / "a" / "b")) == (0o700, 0o700)
    assert mode(path) == 0o600


@pytest.mark.usefixtures("permissive_umask")
def test_wal_and_shm_files_are_0600(db_path: Path) -> None:
    """The -wal and -shm files SQLite makes beside the database are 0600 as well."""
    with contextlib.closing(open_sqlite(db_path)) as store:
        store.add_workers([worker("w")])
        wal, shm = Path(f"{db_path}-wal"), Path(f"{db_path}-shm")
        assert (mode(wal), mode(shm)) == (0o600, 0o600)


def test_an_existing_loose_database_is_tightened_to_0600(db_path: Path) -> None:
    """Opening a 0644 database (with 0644 -wal/-shm left open elsewhere) makes all 0600."""
    open_sqlite(db_path).close()
    with raw(db_path) as other:
        other.execute("SELECT count(*) FROM workers").fetchone()  # keeps -wal/-shm in place
        files = [db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")]
        for path in files:
            path.chmod(0o644)
        open_sqlite(db_path).close()
        assert [mode(path) for path in files] == [0o600, 0o600, 0o600]


def test_the_database_is_in_wal_mode(store: SqliteStore, db_path: Path) -> None:
    """journal_mode is WAL, as another connection sees it."""
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_connection_syncs_fully_and_enforces_foreign_keys(store: SqliteStore) -> None:
    """synchronous=FULL, foreign_keys=ON and a 5 s busy timeout are set on the connection."""
    conn = store._conn  # per-connection settings can only be read on the connection itself
    assert conn is not None
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


# ---------------------------------------------------------------- errors become StoreError


def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    """A text file gives StoreError (not sqlite3.Error) and keeps its content and mode."""
    path = tmp_path / "notes.txt"
    path.write_text("remember the milk\n")
    path.chmod(0o644)
    with pytest.raises(StoreError) as caught:
        open_sqlite(path)
    assert "not a Mecha database" in caught.value.hint
    assert path.read_text() == "remember the milk\n"
    assert mode(path) == 0o644


def test_a_damaged_database_gives_store_error(tmp_path: Path) -> None:
    """A SQLite header followed by garbage is reported by SQLite and becomes StoreError."""
    path = tmp_path / "damaged.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    with pytest.raises(StoreError) as caught:
        open_sqlite(path)
    assert str(path) in caught.value.message
    assert "not a Mecha database" in caught.value.hint


def test_a_directory_path_gives_store_error(tmp_path: Path) -> None:
    """Pointing at a folder says it is a directory and suggests a file inside it."""
    with pytest.raises(StoreError, match="is a directory") as caught:
        open_sqlite(tmp_path)
    assert str(tmp_path / "mecha.db") in caught.value.hint


def test_a_file_where_the_folder_should_be_gives_store_error(tmp_path: Path) -> None:
    """A parent that is a file cannot hold the database: StoreError."""
    (tmp_path / "home").write_text("")
    with pytest.raises(StoreError, match="home"):
        open_sqlite(tmp_path / "home" / "mecha.db")


def _open_as_nobody(db: Path) -> str:
    """Fork, drop to user nobody in the child, try to open ``db``; return what it said."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        said = "opened"
        try:
            os.setgid(65534)
            os.setuid(65534)
            open_sqlite(db).close()
        except StoreError as exc:
            said = str(exc)
        except BaseException as exc:
            said = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write_end, said.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(pid, 0)
    return said


def test_a_database_the_user_may_not_open_gives_permission_denied() -> None:
    """Another user's 0600 database: StoreError saying permission denied, file untouched.

    Run as root (as CI is), the opening happens in a forked child running as user nobody.
    """
    folder = Path(tempfile.mkdtemp(prefix="mecha-perm-"))
    try:
        folder.chmod(0o755)
        db = folder / "mecha.db"
        open_sqlite(db).close()
        if os.geteuid() == 0:
            said = _open_as_nobody(db)
        else:
            db.chmod(0o000)
            with pytest.raises(StoreError) as caught:
                open_sqlite(db)
            said = str(caught.value)
        assert "permission denied" in said, said
    finally:
        shutil.rmtree(folder)


def test_a_lock_held_past_the_busy_timeout_gives_store_error(db_path: Path) -> None:
    """Another writer holding the lock too long gives StoreError naming another process."""
    with contextlib.closing(open_sqlite(db_path, busy_timeout=0.1)) as store, raw(db_path) as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError) as caught:
            store.add_workers([worker("late")])
        other.execute("ROLLBACK")
        assert "another mecha process" in caught.value.hint
        assert store.count_workers() == 0


def test_a_row_this_mecha_cannot_read_gives_store_error(store: SqliteStore, db_path: Path) -> None:
    """A stored state this version does not know gives StoreError, not ValueError."""
    store.add_workers([worker("odd")])
    with raw(db_path) as conn:
        conn.execute("UPDATE workers SET state = 'hibernating'")
    with pytest.raises(StoreError, match="odd"):
        store.list_workers()


# ---------------------------------------------------------------- what the file holds


def test_definition_round_trips_through_compact_sorted_json(
    store: SqliteStore, db_path: Path
) -> None:
    """The definition is stored as compact, key-sorted JSON and read back equal."""
    definition = {"name": "w", "events": [{"on": ["push"], "auto": True}], "ü": 1.5, "a": None}
    store.add_workers([worker("w", definition=definition)])
    with raw(db_path) as conn:
        text = conn.execute("SELECT definition FROM workers").fetchone()[0]
    assert text == '{"a":null,"events":[{"auto":true,"on":["push"]}],"name":"w","\\u00fc":1.5}'
    assert store.get_worker("w").definition == definition


def test_schema_version_is_the_newest(store: SqliteStore) -> None:
    """An open store reports the newest migration version."""
    assert store.schema_version() == LATEST_VERSION
