"""One CLI run: a child in its own process group, its output captured, killed on timeout.

The child starts a new session, so on timeout the whole group (the CLI and anything it
spawned: node, shells, tools) is sent SIGTERM, then SIGKILL after a grace period. After
a normal exit, whatever the CLI left running in its group is killed too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: exit code reported for a run that hit the time limit (as coreutils' timeout does)
TIMEOUT_EXIT = 124
#: exit code reported when the CLI is not installed (as a shell does)
NOT_FOUND_EXIT = 127
#: seconds between SIGTERM and SIGKILL
GRACE = 2.0


@dataclass(frozen=True)
class Run:
    """What one CLI run printed and how it ended."""

    stdout: str
    stderr: str
    exit_code: int
    duration_ms: int
    timed_out: bool = False


class Runner:
    """Runs one command at a time and can kill it from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._group = 0

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str = "",
        timeout: float,
        stdin_text: str | None = None,
    ) -> Run:
        """Run ``argv``; stdin gets ``stdin_text`` (or nothing) and is closed."""
        started = time.monotonic()
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd or None,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            message = f"{argv[0]}: {exc.strerror or exc}"
            return Run("", message, NOT_FOUND_EXIT, _ms_since(started))
        with self._lock:
            self._group = child.pid
        try:
            return self._wait(child, timeout, stdin_text, started)
        finally:
            with self._lock:
                self._group = 0
            kill_group(child.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Kill the running command's process group, if one runs (for shutdown)."""
        with self._lock:
            group = self._group
        if group:
            kill_group(group, signal.SIGKILL)

    def _wait(
        self,
        child: subprocess.Popen[bytes],
        timeout: float,
        stdin_text: str | None,
        started: float,
    ) -> Run:
        data = None if stdin_text is None else stdin_text.encode()
        try:
            out, err = child.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            out, err = _stop(child)
            return Run(_text(out), _text(err), TIMEOUT_EXIT, _ms_since(started), timed_out=True)
        code = child.returncode
        # a CLI killed by a signal: report 128+N as a shell does
        exit_code = 128 - code if code < 0 else code
        return Run(_text(out), _text(err), exit_code, _ms_since(started))


def kill_group(group: int, sig: signal.Signals) -> None:
    """Signal every process in ``group``; quiet if none is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _stop(child: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """SIGTERM the group, SIGKILL it after GRACE; what it printed so far."""
    kill_group(child.pid, signal.SIGTERM)
    try:
        return child.communicate(timeout=GRACE)
    except subprocess.TimeoutExpired:
        kill_group(child.pid, signal.SIGKILL)
    try:
        return child.communicate(timeout=GRACE)
    except subprocess.TimeoutExpired:
        # something outside the group holds the pipes open: give up on the output
        child.kill()
        child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
        return b"", b""


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
