"""A throwaway PostgreSQL cluster, for tests and benchmarks: ``PostgresCluster``.

``PostgresCluster(durable=False).start()`` makes one in a temporary folder and starts it:
Debian's ``postgresql`` is installed with apt-get when it is missing and we are root;
``initdb`` runs as the ``postgres`` user (initdb refuses root) with trust
authentication; ``pg_ctl start`` listens on a free 127.0.0.1 port with its socket in that
folder: no system service, nothing outside the folder. ``remove()`` stops it and removes
the folder. ``durable=False`` (tests) turns fsync off; benchmarks keep PostgreSQL's
defaults.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL = "apt-get install postgresql"
#: how long initdb, pg_ctl start and apt-get may take on a busy machine
START_DEADLINE = 600


class PostgresCluster:
    """One initdb'd folder and the server running on it."""

    def __init__(self, *, durable: bool = False, max_connections: int = 400) -> None:
        self.durable = durable
        self.max_connections = max_connections
        self.folder = Path(tempfile.mkdtemp(prefix="mecha-pg-"))
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._started = False
        self._stop: list[str] = []

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
            f"-c max_connections={self.max_connections}"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
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
