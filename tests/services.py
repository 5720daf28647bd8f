"""Services some tests need, got by the test run itself where it can, named where it cannot.

``docker_engine()``: a Docker engine that answers and holds the base image
``debian:bookworm-slim`` (every test Dockerfile starts from it; nothing is ever pulled).

* No engine answers at the local socket, we are root and ``dockerd`` is installed: it is
  started in the background (its log: DOCKERD_LOG) and keeps running after the session,
  like the system service it stands in for.
* The base image is missing, we are root and debootstrap is installed:
  ``images/make-base.sh`` makes it from Debian's mirror (its log: MAKE_BASE_LOG).

Each is tried once per session, under a file lock so that parallel sessions do not race.
Otherwise the test is ``missing()``, with one line saying what is missing and how to get
it: skipped, or failed under CI=true. Later services (PostgreSQL, Chromium) go here too.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mecha.runtimes.managed.probe import (
    DEFAULT_HOST,
    DockerUnreachable,
    docker_host,
    engine_version,
    image_present,
)
from tests.components import missing

REPO = Path(__file__).resolve().parent.parent
BASE_IMAGE = "debian:bookworm-slim"
INSTALL = "apt-get install docker.io debootstrap"
SCRATCH = Path(tempfile.gettempdir())
DOCKERD_LOG = SCRATCH / "mecha-tests-dockerd.log"
MAKE_BASE_LOG = SCRATCH / "mecha-tests-make-base.log"
#: how long a starting dockerd may take to answer, and images/make-base.sh to finish
ENGINE_DEADLINE = 120.0
BASE_DEADLINE = 1800.0
#: how long one question to the engine may take (a busy engine is slow, not gone)
ASK_TIMEOUT = 30.0

#: per service: "" once it is ready, else why it is missing (asked once per session)
_verdicts: dict[str, str] = {}


def docker_engine() -> str:
    """The engine's address (e.g. unix:///var/run/docker.sock), set up if need be."""
    host = docker_host()
    key = f"docker at {host}"
    if key not in _verdicts:
        with _lock("docker"):
            _verdicts[key] = _ready_docker(host)
    if _verdicts[key]:
        missing(_verdicts[key])
    return host


def _ready_docker(host: str) -> str:
    """Empty once an engine answers and holds BASE_IMAGE, else what is missing."""
    if not _answers(host):
        why = _start_dockerd(host)
        if why:
            return why
    try:
        if image_present(host, BASE_IMAGE, timeout=ASK_TIMEOUT):
            return ""
    except DockerUnreachable as exc:
        return f"the Docker engine stopped answering: {exc}"
    return _make_base(host)


def _answers(host: str) -> bool:
    try:
        engine_version(host, timeout=ASK_TIMEOUT)
    except DockerUnreachable:
        return False
    return True


def _start_dockerd(host: str) -> str:
    """Start dockerd in the background and wait until it answers; empty, or why not."""
    if host != DEFAULT_HOST:
        return f"no Docker engine answers at DOCKER_HOST={host}: start it, or unset DOCKER_HOST"
    dockerd = _program("dockerd")
    if dockerd is None:
        return f"no Docker engine: `{INSTALL}`, then run the tests as root (they start dockerd)"
    if os.geteuid() != 0:
        return f"no Docker engine answers at {host}: start it (`sudo dockerd &`) or run as root"
    with DOCKERD_LOG.open("ab") as log:  # its own session: an interrupted test run leaves it
        launched = subprocess.Popen(
            [dockerd], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + ENGINE_DEADLINE
    while time.monotonic() < deadline:
        if _answers(host):
            _forget(launched)
            return ""
        if launched.poll() is not None:
            return f"dockerd exited (code {launched.returncode}): {_last_line(DOCKERD_LOG)}"
        time.sleep(0.5)
    _forget(launched)
    return f"dockerd did not answer within {ENGINE_DEADLINE:g} s; see {DOCKERD_LOG}"


def _forget(process: subprocess.Popen[bytes]) -> None:
    """Let a started daemon run on without Popen warning that it still runs."""
    process.returncode = 0


def _make_base(host: str) -> str:
    """Run images/make-base.sh; empty once BASE_IMAGE is on the engine, or why not."""
    wanted = f"the base image {BASE_IMAGE} is not on the Docker engine"
    if _program("debootstrap") is None or _program("docker") is None:
        return f"{wanted}: `{INSTALL}`, then run images/make-base.sh as root"
    if os.geteuid() != 0:
        return f"{wanted}: run `sudo images/make-base.sh` (it uses debootstrap, pulls nothing)"
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}
    with MAKE_BASE_LOG.open("wb") as log:
        done = subprocess.run(
            [str(REPO / "images" / "make-base.sh"), BASE_IMAGE], stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, env=env, timeout=BASE_DEADLINE, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        return f"{wanted}; images/make-base.sh failed: {_last_line(MAKE_BASE_LOG)}"
    if not image_present(host, BASE_IMAGE, timeout=ASK_TIMEOUT):
        return f"{wanted}; images/make-base.sh did not make it (see {MAKE_BASE_LOG})"
    return ""


def _program(name: str) -> str | None:
    """An installed program, also in the sbin folders a user's PATH may leave out."""
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


def _last_line(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return f"{lines[-1] if lines else '(no output)'} (log: {log})"


@contextmanager
def _lock(service: str) -> Iterator[None]:
    """One session at a time sets a service up (others wait, then find it ready)."""
    path = SCRATCH / f"mecha-tests-{service}-{os.getuid()}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
