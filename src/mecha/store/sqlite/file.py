"""The SQLite database file: made safely (folder 0700, file 0600), opened in WAL mode,
and every sqlite3 or OS error explained as a StoreError that says what to do."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from mecha.errors import StoreError

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_HEADER = b"SQLite format 3\x00"
_NO_PATH_HINT = "set MECHA_DB_PATH to a file you own, or fix the permissions"

_LOCKED = (
    "the database {path} stayed locked longer than the busy timeout",
    "another mecha process holds it (a running `mecha serve`?); let it finish or stop it",
)
_READONLY = (
    "cannot write the database {path}: permission denied",
    "make the file, its -wal/-shm files and its folder writable by you; or set MECHA_DB_PATH",
)
#: sqlite primary result code → (what is wrong, what to do); {path} is filled in
_EXPLAINED: dict[int, tuple[str, str]] = {
    sqlite3.SQLITE_BUSY: _LOCKED,
    sqlite3.SQLITE_LOCKED: _LOCKED,
    sqlite3.SQLITE_READONLY: _READONLY,
    sqlite3.SQLITE_PERM: _READONLY,
    sqlite3.SQLITE_NOTADB: (
        "{path} is not a SQLite database",
        "the file at {path} is not a Mecha database; move it away or set MECHA_DB_PATH",
    ),
    sqlite3.SQLITE_CORRUPT: (
        "the database {path} is damaged",
        "restore it from a backup, or move it away to start afresh (registrations are lost)",
    ),
    sqlite3.SQLITE_CANTOPEN: (
        "cannot open the database {path} or its -wal/-shm files",
        "check that you may read and write the file and its folder, or set MECHA_DB_PATH",
    ),
    sqlite3.SQLITE_FULL: ("the disk holding {path} is full", "free some space, then try again"),
    sqlite3.SQLITE_IOERR: ("disk I/O error on {path}", "check the disk that holds it, then retry"),
}
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_UNEXPLAINED = ("database error on {path}", "if it happens again, report it with this message")


def make_folder(folder: Path) -> None:
    """Create ``folder`` and any missing parents, each 0700 whatever the umask."""
    try:
        missing: list[Path] = []
        current = folder
        while not current.exists() and current != current.parent:
            missing.append(current)
            current = current.parent
        for part in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another process made it just now
                part.mkdir(mode=FOLDER_MODE)
                part.chmod(FOLDER_MODE)
    except OSError as exc:
        raise StoreError(
            f"cannot create the folder for the database, {folder}: {exc.strerror or exc}",
            hint=_NO_PATH_HINT,
        ) from exc
    if not folder.is_dir():
        raise StoreError(f"{folder} is not a folder", hint=_NO_PATH_HINT)


def make_file(path: Path) -> None:
    """Create the database file 0600, or check an existing one and tighten it to 0600."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise _os_error(exc, path) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"{path} is not a regular file", hint=_NO_PATH_HINT)
        if info.st_size and os.pread(fd, len(_HEADER), 0) != _HEADER:
            message, hint = _EXPLAINED[sqlite3.SQLITE_NOTADB]
            raise StoreError(message.format(path=path), hint=hint.format(path=path))
        if info.st_uid == os.geteuid():
            os.fchmod(fd, FILE_MODE)
            for suffix in ("-wal", "-shm"):
                _tighten(Path(f"{path}{suffix}"))
    except OSError as exc:
        raise _os_error(exc, path) from exc
    finally:
        os.close(fd)


def _tighten(path: Path) -> None:
    """Make ``path`` 0600 if it exists and is ours (a -wal/-shm left by an older run)."""
    with contextlib.suppress(FileNotFoundError):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid():
            path.chmod(FILE_MODE)


def configure(conn: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
    """Set the pragmas; StoreError if the database refuses WAL mode."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    mode = _switch_to_wal(conn, busy_timeout)
    if mode != "wal":
        raise StoreError(
            f"the database {path} cannot use WAL mode (it stayed in {mode} mode)",
            hint="keep the database on a local disk, not a network share; set MECHA_DB_PATH",
        )
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """Set WAL mode; return the mode in force. Retries SQLITE_BUSY itself, because SQLite
    does not call the busy handler while another process switches a new file to WAL."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if result_code(exc) not in _BUSY_CODES or time.monotonic() >= deadline:
                raise
        time.sleep(0.005)


def result_code(exc: sqlite3.Error) -> int:
    """The primary SQLite result code of ``exc`` (0 if it has none)."""
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


@contextlib.contextmanager
def translated(path: Path, doing: str) -> Iterator[None]:
    """Turn any sqlite3 error inside into the StoreError that explains it."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _store_error(exc, path, doing) from exc


def _store_error(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """The StoreError that explains ``exc``, raised while ``doing`` something with ``path``."""
    message, hint = _EXPLAINED.get(result_code(exc), _UNEXPLAINED)
    return StoreError(
        f"{message.format(path=path)} (while {doing}: {exc})", hint=hint.format(path=path)
    )


def _os_error(exc: OSError, path: Path) -> StoreError:
    """The StoreError for an OS error while creating or checking the database file."""
    if isinstance(exc, IsADirectoryError):
        hint = f"set MECHA_DB_PATH to a file path, e.g. {path / 'mecha.db'}"
        return StoreError(f"{path} is a directory, not a database file", hint=hint)
    if isinstance(exc, PermissionError):
        hint = f"make it readable and writable by you (chmod 600 {path}), or set MECHA_DB_PATH"
        return StoreError(f"cannot open the database {path}: permission denied", hint=hint)
    return StoreError(f"cannot open the database {path}: {exc.strerror or exc}", hint=_NO_PATH_HINT)


def rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if any; a failing rollback must not hide the first error."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
