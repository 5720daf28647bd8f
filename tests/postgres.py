"""A real PostgreSQL for the tests: a throwaway cluster, and an empty database per test.

``pg_server`` (session): the URL of a running server. With ``MECHA_TEST_DATABASE_URL``
set, that server (one you run; the tests create and drop databases on it). Otherwise one
cluster per session, started by the test run itself:

* Debian's ``postgresql`` is installed with apt-get when it is missing and we are root;
* ``initdb`` as the ``postgres`` user (initdb refuses root) in a temporary folder, trust
  authentication, then ``pg_ctl start`` on a free 127.0.0.1 port with its socket in that
  folder: no system service, nothing outside the folder;
* at the end of the session it is stopped and the folder removed.

``pg_url`` (per test): a database of its own on that server, dropped afterwards.
Without PostgreSQL the test is ``missing()``: skipped, or failed under CI=true.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.components import missing

INSTALL = "apt-get install postgresql"
#: how long initdb, pg_ctl start and apt-get may take on a busy machine
START_DEADLINE = 600
URL_VARIABLE = "MECHA_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a running PostgreSQL server (its maintenance database)."""
    given = os.environ.get(URL_VARIABLE, "")
    if given:
        yield given
        return
    cluster = _Cluster()
    why = cluster.start()
    if why:
        cluster.remove()
        missing(why)
    try:
        yield cluster.url
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A new, empty database on ``pg_server``, dropped after the test."""
    name = f"mecha_test_{uuid.uuid4().hex[:12]}"
    _admin(pg_server, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(pg_server, name)
    finally:
        _admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead."""
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())  # a name made above, not input


class _Cluster:
    """One initdb'd folder and the server running on it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mecha-pg-"))
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._started = False

    def start(self) -> str:
        """Empty once the server answers, else why it could not be started."""
        binaries = _binaries()
        if binaries is None:
            if os.geteuid() != 0 or shutil.which("apt-get") is None:
                return f"no PostgreSQL server: `{INSTALL}` (then the tests start their own)"
            why = _install()
            if why:
                return why
            binaries = _binaries()
            if binaries is None:
                return f"`{INSTALL}` ran, yet no initdb was found under /usr/lib/postgresql"
        data = self.folder / "data"
        as_postgres = _as_postgres_user(self.folder)
        init = _run([*as_postgres, str(binaries / "initdb"), "-D", str(data), "--auth=trust",
                     "-U", "postgres", "--no-sync"])  # fmt: skip
        if init.returncode != 0:
            return f"initdb failed: {_tail(init.stdout + init.stderr)}"
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
            "-c max_connections=400 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )
        log = self.folder / "server.log"
        started = _run([*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-o", options,
                        "-l", str(log), "-w", "-t", str(START_DEADLINE), "start"])  # fmt: skip
        if started.returncode != 0:
            tail = log.read_text(errors="replace") if log.exists() else started.stderr
            return f"pg_ctl start failed: {_tail(tail)}"
        self._started = True
        self._stop = [*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-m",
                      "immediate", "-w", "stop"]  # fmt: skip
        return ""

    def remove(self) -> None:
        """Stop the server (if it runs) and remove the folder."""
        if self._started:
            _run(self._stop)
        shutil.rmtree(self.folder, ignore_errors=True)


def _binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps them per version)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _install() -> str:
    """apt-get install postgresql (after an update if the first try fails); empty, or why."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "postgresql"], ["apt-get", "update"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=START_DEADLINE, check=False)  # fmt: skip
        if command[1] == "install" and done.returncode == 0:
            return ""
    retry = subprocess.run(["apt-get", "install", "-y", "postgresql"], capture_output=True,
                           text=True, env=env, timeout=START_DEADLINE, check=False)  # fmt: skip
    return "" if retry.returncode == 0 else f"`{INSTALL}` failed: {_tail(retry.stderr)}"


def _as_postgres_user(folder: Path) -> list[str]:
    """As root, run as ``postgres`` (initdb refuses root) and give it the folder."""
    if os.geteuid() != 0:
        return []
    shutil.chown(folder, "postgres", "postgres")
    folder.chmod(0o700)
    return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd="/",
                          timeout=START_DEADLINE, check=False)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _tail(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"
