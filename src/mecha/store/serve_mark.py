"""Whether a `mecha serve` runs on a database: a lock it holds on a file beside it.

Serve takes an exclusive ``flock`` on ``<database>-serve`` when it starts and keeps the
file open until it stops. The kernel drops the lock when the process ends, however it
ends, so a crash leaves no stale mark and nothing needs cleaning up. Other commands ask
``running_serve`` (one ``open`` and one non-blocking lock attempt, no process listing)
to say "serve picks it up" instead of "start serve". The file holds serve's pid, for the
message only.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def mark_path(db_path: Path) -> Path:
    """The lock file of the serve running on ``db_path`` (``mecha.db`` → ``mecha.db-serve``)."""
    return db_path.with_name(db_path.name + "-serve")


class ServeMark:
    """Held by `mecha serve` from ``take`` to ``release``."""

    def __init__(self, db_path: Path) -> None:
        self.path = mark_path(db_path)
        self._fd: int | None = None

    def take(self) -> bool:
        """Mark this process as the serve of the database; False if another one is."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("cannot mark serve as running in %s: %s", self.path, exc.strerror)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            log.warning(
                "another mecha serve runs on this database (%s holds its lock); both will "
                "send tasks and start adapters",
                self.path,
            )
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Drop the mark (the file stays: removing it could race a serve starting)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def running_serve(db_path: Path) -> int | None:
    """The pid of the `mecha serve` running on ``db_path`` (0 if unreadable); None if none."""
    try:
        fd = os.open(mark_path(db_path), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
