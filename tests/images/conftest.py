"""The in-container worker server, run on the host as a real process with fake CLIs.

``start_worker(backend, **env)`` starts ``python -m mecha_worker`` (PYTHONPATH
images/worker) on 127.0.0.1 at a free port, with ``claude``, ``codex`` and ``gemini``
on PATH being ``fake_cli.py`` (which prints the real CLIs' output formats), and stops it
after the test.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from mecha.result import TaskResult, parse_result

REPO = Path(__file__).resolve().parents[2]
WORKER_DIR = REPO / "images" / "worker"
FAKE_CLI = Path(__file__).with_name("fake_cli.py")
START_TIMEOUT = 60.0
_LISTENING = re.compile(r" on 127\.0\.0\.1:(\d+)")


@dataclass
class RunningWorker:
    """A worker process: its URL, its log lines and the fake CLIs' run records."""

    url: str
    proc: subprocess.Popen[str]
    record: Path
    logs: list[str] = field(default_factory=list)

    def post(self, payload: Any, *, key: str = "", timeout: float = 30.0) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.post(f"{self.url}/task", json=payload, headers=headers, timeout=timeout)

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.url}/health", timeout=5.0)

    def answer(self, prompt: str, *, key: str = "") -> dict[str, Any]:
        """POST a task, expect 200 and an answer that follows the result contract."""
        response = self.post({"id": "task-1", "prompt": prompt, "context": {}}, key=key)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        contract(data)
        return data

    def runs(self) -> list[dict[str, Any]]:
        """What each CLI run saw (argv, stdin, cwd, pids, env)."""
        if not self.record.exists():
            return []
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def contract(data: Any) -> TaskResult:
    """The answer parses as Mecha's result contract (raises ResultError otherwise)."""
    return parse_result(data)


def raw_request(port: int, data: bytes) -> tuple[int, bytes]:
    """Send raw bytes, read until the server closes or answers fully: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        while length and len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    status = int(head.split(b" ", 2)[1])
    return status, body


def _drain(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))


def _wait_listening(proc: subprocess.Popen[str], lines: list[str]) -> int:
    assert proc.stderr is not None
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                break
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            found = _LISTENING.search(line)
            if found:
                return int(found.group(1))
    pytest.fail("the worker did not start:\n" + "\n".join(lines), pytrace=False)


def fake_bin(folder: Path) -> Path:
    """A folder with claude, codex and gemini programs that run fake_cli.py."""
    folder.mkdir(parents=True, exist_ok=True)
    for cli in ("claude", "codex", "gemini"):
        program = folder / cli
        program.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" {cli} "$@"\n')
        program.chmod(0o755)
    return folder


def worker_env(tmp_path: Path, backend: str, env: dict[str, str]) -> dict[str, str]:
    """The environment a test worker starts with (nothing inherited but PATH)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    path = f"{fake_bin(tmp_path / 'bin')}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {
        "PATH": path,
        "PYTHONPATH": str(WORKER_DIR),
        "HOME": str(home),
        "WORKER_HOST": "127.0.0.1",
        "WORKER_PORT": "0",
        "WORKER_BACKEND": backend,
        "FAKE_CLI_RECORD": str(tmp_path / "runs.jsonl"),
        **env,
    }


StartWorker = Callable[..., RunningWorker]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Start workers for the test: ``start_worker("claude", CLAUDE_MODEL="x")``."""
    started: list[tuple[subprocess.Popen[str], threading.Thread]] = []

    def start(backend: str = "echo", **env: str) -> RunningWorker:
        full = worker_env(tmp_path, backend, env)
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "mecha_worker"],
            env=full,
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        drain = threading.Thread(target=_drain, args=(proc.stderr, lines), daemon=True)
        started.append((proc, drain))
        port = _wait_listening(proc, lines)
        drain.start()
        record = Path(full["FAKE_CLI_RECORD"])
        return RunningWorker(url=f"http://127.0.0.1:{port}", proc=proc, record=record, logs=lines)

    yield start
    for proc, drain in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if drain.is_alive():
            drain.join(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()
