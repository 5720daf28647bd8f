"""A real `mecha serve` in a child process on a free loopback port, for tests and benchmarks.

``ServeProcess(home)`` starts ``python -m mecha serve --addr 127.0.0.1:0`` (``addr=None``:
no ``--addr``, for MECHA_ADDR or config.yml to choose) with ``MECHA_HOME=home``, reads the
port it bound from its first line, and waits until ``/health`` answers. ``stop()`` sends
SIGTERM (a graceful stop), ``kill()`` SIGKILL.
Everything the server wrote to stderr is in ``log()``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

_LISTENING = re.compile(r"listening on (http://[^ ]+)")


class ServeProcess:
    """One `mecha serve` child process."""

    def __init__(
        self,
        home: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 20.0,
        addr: str | None = "127.0.0.1:0",
    ) -> None:
        self.home = home
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
        environ.update({"MECHA_HOME": str(home), "PYTHONUNBUFFERED": "1"})
        environ.update(env or {})
        flag = ["--addr", addr] if addr is not None else []
        command = [sys.executable, "-m", "mecha", "serve", *flag, *args]
        self._proc = subprocess.Popen(
            command, env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._lines: list[str] = []
        self._found = threading.Event()
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._wait_ready(timeout)

    def _read(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._lines.append(line)
            match = _LISTENING.search(line)
            if match and not self.url:
                # a serve on every interface is reached through loopback
                self.url = match[1].replace("//0.0.0.0:", "//127.0.0.1:")
                self._found.set()
        self._found.set()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if not self._found.wait(timeout) or not self.url:
            self.kill()
            raise RuntimeError(f"mecha serve did not start:\n{self.log()}")
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mecha serve never became healthy:\n{self.log()}")

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self._proc.pid

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        return "".join(self._lines)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit status."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        return self._finish(timeout)

    def kill(self) -> int:
        """SIGKILL (a crash) and wait; the exit status."""
        if self._proc.poll() is None:
            self._proc.kill()
        return self._finish(10.0)

    def _finish(self, timeout: float) -> int:
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        self._reader.join(5)
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        return code

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if kind is not None:  # pytest shows it with the failure: what serve did meanwhile
            sys.stderr.write(f"--- mecha serve's log ---\n{self.log()}")
