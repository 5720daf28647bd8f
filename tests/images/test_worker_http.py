"""The worker HTTP contract of the in-container server: health, auth, limits, single flight."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from mecha.result import failure_of
from tests.images.conftest import StartWorker, contract, raw_request, worker_env

KEY = "worker-key-0123456789"


def test_health_answers_ok_with_the_backend(start_worker: StartWorker) -> None:
    worker = start_worker("codex")
    response = worker.health()
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["backend"] == "codex"


def test_task_without_the_key_is_refused(start_worker: StartWorker) -> None:
    worker = start_worker("echo", WORKER_API_KEY=KEY)
    assert worker.post({"prompt": "hi"}).status_code == 401
    assert worker.post({"prompt": "hi"}, key="wrong-key").status_code == 401
    assert worker.post({"prompt": "hi"}, key=KEY).status_code == 200


def test_health_needs_no_key(start_worker: StartWorker) -> None:
    worker = start_worker("echo", WORKER_API_KEY=KEY)
    assert worker.health().status_code == 200


def test_key_is_never_logged_nor_passed_to_the_cli(start_worker: StartWorker) -> None:
    worker = start_worker("claude", WORKER_API_KEY=KEY)
    worker.answer("hello", key=KEY)
    assert worker.post({"prompt": "hi"}, key="wrong").status_code == 401
    assert worker.runs()[0]["env"]["WORKER_API_KEY"] is None
    assert not any(KEY in line for line in worker.logs)


def test_secrets_are_scrubbed_from_answers(start_worker: StartWorker) -> None:
    secret = "sk-ant-api03-" + "x" * 24
    worker = start_worker("claude", ANTHROPIC_API_KEY=secret)
    answer = worker.answer("SECRET please")
    assert secret not in str(answer)
    assert answer["output"] == "[REDACTED]"


def test_missing_content_length_is_411(start_worker: StartWorker) -> None:
    worker = start_worker()
    request = (
        b"POST /task HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n10\r\n{"prompt": "hi"}\r\n0\r\n\r\n'
    )
    status, _ = raw_request(worker.port(), request)
    assert status == 411


def test_body_over_10_mb_is_413_without_reading_it(start_worker: StartWorker) -> None:
    worker = start_worker()
    size = 10 * 1024 * 1024 + 1
    request = f"POST /task HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
    status, _ = raw_request(worker.port(), request)
    assert status == 413


def test_invalid_json_is_400(start_worker: StartWorker) -> None:
    worker = start_worker()
    response = httpx.post(f"{worker.url}/task", content=b"{not json", timeout=10)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_missing_or_empty_prompt_is_400(start_worker: StartWorker) -> None:
    worker = start_worker()
    for payload in ({"id": "1"}, {"prompt": "  "}, {"prompt": 7}, ["prompt"]):
        response = worker.post(payload)
        assert response.status_code == 400, payload
        assert "error" in response.json()


def test_unknown_path_is_404(start_worker: StartWorker) -> None:
    worker = start_worker()
    assert httpx.get(f"{worker.url}/nope", timeout=5).status_code == 404
    assert httpx.post(f"{worker.url}/tasks", json={}, timeout=5).status_code == 404


def test_second_task_while_one_runs_is_429_and_health_says_busy(
    start_worker: StartWorker,
) -> None:
    worker = start_worker("claude")
    answers: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: answers.append(worker.post({"prompt": "SLOW"})))
    slow.start()
    try:
        _wait_for_run(worker.record)
        busy = worker.post({"prompt": "second"})
        health = worker.health()
    finally:
        slow.join(timeout=60)
    assert busy.status_code == 429
    assert busy.json() == {"error": "worker busy"}
    assert health.status_code == 503
    assert health.json()["status"] == "busy"
    assert answers[0].status_code == 200
    assert worker.health().status_code == 200
    assert len(worker.runs()) == 1


def test_dry_run_echoes_the_prompt_and_runs_nothing(start_worker: StartWorker) -> None:
    worker = start_worker("claude", WORKER_DRY_RUN="true", CLAUDE_MODEL="opus")
    answer = worker.answer("review this")
    assert answer["output"] == "review this"
    meta = answer["metadata"]
    assert meta["dry_run"] is True
    assert meta["backend"] == "claude"
    assert meta["exit_code"] == 0
    assert meta["command"][:2] == ["claude", "-p"]
    assert meta["command"][-4:-2] == ["--model", "opus"]
    assert meta["command"][-1] == "<prompt>"
    assert worker.runs() == []


def test_echo_backend_answers_with_the_prompt(start_worker: StartWorker) -> None:
    answer = start_worker("echo").answer("three little words")
    assert answer["output"] == "three little words"
    assert answer["comment"] == {"body": "three little words"}
    assert answer["metadata"]["input_tokens"] == 3
    assert answer["metadata"]["exit_code"] == 0


def test_connection_stays_open_between_requests(start_worker: StartWorker) -> None:
    worker = start_worker()
    with httpx.Client(base_url=worker.url, timeout=10) as client:
        first = client.post("/task", json={"prompt": "one"})
        second = client.post("/task", json={"prompt": "two"})
    assert (first.json()["output"], second.json()["output"]) == ("one", "two")
    assert not failure_of(contract(second.json()))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_BACKEND", "cursor"),
        ("WORKER_PORT", "http"),
        ("WORKER_TIMEOUT", "0"),
        ("WORKER_DRY_RUN", "maybe"),
    ],
)
def test_bad_setting_stops_the_worker_with_a_message(tmp_path: Path, name: str, value: str) -> None:
    env = worker_env(tmp_path, "echo", {name: value})
    done = subprocess.run(
        [sys.executable, "-m", "mecha_worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert f"{name}={value!r}" in done.stderr


def _wait_for_run(record: Path, timeout: float = 60.0) -> None:
    """Until the fake CLI has recorded its start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if record.exists() and os.path.getsize(record) > 0:
            return
        time.sleep(0.02)
    raise AssertionError("the CLI never started")
