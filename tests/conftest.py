"""Shared fixtures: every test runs with its own HOME and Mecha folder under tmp_path.

Also for the whole session: Hypothesis runs the same examples on every machine (no
deadline, no examples database; ``HYPOTHESIS_PROFILE=explore`` searches at random instead),
and a session that leaves a thread running (named with where it was started) or a socket
open fails.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

#: real model servers (llama.cpp with SmolLM2, an Ollama-protocol proxy), one per session;
#: worker images and a model server worker containers can reach; headless Chromium
#: (``browser``)
pytest_plugins = ["tests.llm_servers", "tests.worker_images", "tests.postgres", "tests.browsers"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "workers"

# Hypothesis: the same examples each run, wherever it runs (a failure seen once is seen
# again), and no wall-clock bound: a deadline or "too slow" check is what a busy machine
# breaks. `HYPOTHESIS_PROFILE=explore` for new examples, kept in .hypothesis/ (git-ignored).
_QUIET = [HealthCheck.too_slow]
settings.register_profile(
    "repeatable", derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=_QUIET,
)  # fmt: skip
settings.register_profile(
    "explore", max_examples=2000, deadline=None, print_blob=True, suppress_health_check=_QUIET
)


def pytest_configure(config: pytest.Config) -> None:
    """Load the Hypothesis profile (before test modules are imported and their settings
    made)."""
    name = os.environ.get("HYPOTHESIS_PROFILE") or "repeatable"
    if name not in ("repeatable", "explore"):
        raise pytest.UsageError(f"HYPOTHESIS_PROFILE={name}: use repeatable (default) or explore")
    settings.load_profile(name)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME for the test; MECHA_HOME and MECHA_DB_PATH unset."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.delenv("MECHA_HOME", raising=False)
    monkeypatch.delenv("MECHA_DB_PATH", raising=False)
    monkeypatch.delenv("MECHA_DEBUG", raising=False)
    return folder


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write text to tmp_path/NAME (folders made as needed) and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


#: how long the session's end waits for threads still running to finish
THREAD_GRACE = 10.0
_start_thread = threading.Thread.start


def _start_noting_where(self: threading.Thread) -> None:
    """Thread.start, remembering who started the thread (for the session-end check)."""
    self.__dict__["_started_from"] = "".join(traceback.format_stack(limit=6)[:-1])
    _start_thread(self)


threading.Thread.start = _start_noting_where  # type: ignore[method-assign]


@pytest.hookimpl(trylast=True)  # after the runner has torn down session fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a session that leaves a non-daemon thread running (it would hang the exit) or
    a socket open (a leak: pytest reports the unreferenced ones, these are still held)."""
    problems = [*_threads_left(), *_sockets_left()]
    if not problems:
        return
    reporter: Any = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        for problem in problems:
            reporter.write_line(problem)
        reporter.write_line(f"error: the tests left {len(problems)} thread(s)/socket(s)", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _threads_left() -> list[str]:
    left = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(THREAD_GRACE)
        if thread.is_alive():
            where = thread.__dict__.get("_started_from", "(started before the tests)\n")
            left.append(f"thread {thread.name!r} is still running; started at:\n{where}")
    return left


def _sockets_left() -> list[str]:
    """Sockets this process still holds open (Linux: read from /proc/self/fd)."""
    gc.collect()  # the unreferenced ones are closed (and reported by pytest) now
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return []
    left = []
    for fd in fds:
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            with socket.socket(fileno=os.dup(fd)) as sock:
                ends = " → ".join(str(end) for end in _ends(sock)) or "unnamed"
                left.append(f"socket fd={fd} ({sock.family.name}: {ends}) is still open")
        except OSError:
            continue  # closed meanwhile (the listing's own fd), or not a socket we can see
    return left


def _ends(sock: socket.socket) -> list[object]:
    ends = []
    for end in (sock.getsockname, sock.getpeername):
        try:
            ends.append(end())
        except OSError:  # not connected
            continue
    return [end for end in ends if end]
