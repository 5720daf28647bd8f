"""A running task shows its progress: time against its timeout, and tokens as they stream.

A real `mecha serve` runs an adapter in front of a real llama.cpp server (SmolLM2) on a
prompt that writes until ``max_tokens``; while it runs, `GET /task/{id}`, `mecha task ls`
and `mecha task show` (other processes, reading the store) show a token count that
grows, and `of 5m`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx

from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, RULE
from tests.e2e.serving import make_home, mecha_cli
from tests.llm_servers import LlmServer

#: SmolLM2 at temperature 0 writes this story until max_tokens stops it
LONG_PROMPT = "Write a very long story about a robot, with many chapters."
#: generous: on a loaded machine a token may take a tenth of a second
DEADLINE = 300.0


def story_worker(home: Path, upstream: str, *, stream: bool = True) -> None:
    adapter = (
        f"  type: openai\n  upstream: {upstream}\n  model: smollm2\n  max_tokens: 900\n"
        f"  temperature: 0\n  stream: {'true' if stream else 'false'}\n"
    )
    path = home / "writer.yml"
    path.write_text(
        f"name: writer\ntimeout: 5m\nadapter:\n{adapter}events:\n{RULE}", encoding="utf-8"
    )
    done = mecha_cli(home, "worker", "add", str(path))
    assert done.returncode == 0, done.stderr


def send(url: str) -> str:
    answer = httpx.post(f"{url}/task", json={"prompt": LONG_PROMPT, "worker": "writer"}, timeout=10)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def read(url: str, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = httpx.get(f"{url}/task/{task_id}", timeout=10).json()
    return task


def until(url: str, task_id: str, done: Any) -> dict[str, Any]:
    """Read the task until ``done(task)``; fail once it is final, or at the deadline."""
    deadline = time.monotonic() + DEADLINE
    while True:
        task = read(url, task_id)
        if done(task):
            return task
        assert task["state"] in ("pending", "running"), task
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


def tokens(task: dict[str, Any]) -> int:
    progress = task.get("progress") or {}
    return int(progress.get("tokens") or 0)


def cli_tokens(home: Path, *args: str) -> int:
    """The token count `mecha task ls` / `show` prints in the running task's state."""
    done = mecha_cli(home, "task", *args)
    assert done.returncode == 0, done.stderr
    found = re.search(r"running \d+(?:m\d+)?s of 5m, (\d+) tokens?", done.stdout)
    assert found, done.stdout
    return int(found[1])


def test_a_streaming_task_shows_its_tokens_grow_and_its_timeout(
    tmp_path: Path, llama_server: LlmServer
) -> None:
    home = make_home(tmp_path, config=FAST)
    story_worker(home, llama_server.url)
    with ServeProcess(home) as server:
        task_id = send(server.url)
        first = until(server.url, task_id, lambda t: tokens(t) > 0)
        # other processes read the same store: the CLI shows what the API shows
        listed = cli_tokens(home, "ls")
        shown = cli_tokens(home, "show", task_id)
        later = until(server.url, task_id, lambda t: tokens(t) > shown)
        listed_later = cli_tokens(home, "ls")
        cancelled = mecha_cli(home, "task", "cancel", task_id)
    assert first["state"] == later["state"] == "running"
    assert first["timeout"] == 300.0
    assert first["progress"]["timeout"] == 300.0
    assert re.fullmatch(r"\d+(m\d+)?s of 5m, \d+ tokens?", first["progress"]["text"])
    assert later["progress"]["elapsed"] >= first["progress"]["elapsed"]
    # the count only grows, whoever reads it
    assert 0 < tokens(first) <= listed <= shown < tokens(later) <= listed_later
    assert cancelled.returncode == 0, cancelled.stderr


def test_a_task_that_does_not_stream_shows_time_against_its_timeout_only(
    tmp_path: Path, llama_server: LlmServer
) -> None:
    home = make_home(tmp_path, config=FAST)
    story_worker(home, llama_server.url, stream=False)
    with ServeProcess(home) as server:
        task_id = send(server.url)
        running = until(server.url, task_id, lambda t: t["state"] == "running")
        table = mecha_cli(home, "task", "ls")
        shown = mecha_cli(home, "task", "show", task_id)
        mecha_cli(home, "task", "cancel", task_id)
    assert running["progress"]["timeout"] == 300.0
    assert running["progress"]["tokens"] == 0
    assert re.fullmatch(r"\d+(m\d+)?s of 5m", running["progress"]["text"])
    for done in (table, shown):
        assert done.returncode == 0, done.stderr
        assert re.search(r"running \d+(?:m\d+)?s of 5m\s", done.stdout), done.stdout
        assert "token" not in done.stdout
