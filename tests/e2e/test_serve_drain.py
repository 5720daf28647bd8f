"""Stopping and reloading a real `mecha serve`: SIGTERM drains tasks in flight, SIGHUP reloads
secrets.yml."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, endpoint_worker, wait_task
from tests.e2e.serving import make_home, post_github, pr_payload


def task_row(home: Path) -> tuple[str, int]:
    with sqlite3.connect(home / "mecha.db") as conn:
        state, attempts = conn.execute("SELECT state, attempts FROM tasks").fetchone()
    return str(state), int(attempts)


def test_sigterm_waits_for_the_task_in_flight(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.set(delay=1.5)
        endpoint_worker(home, "slow", worker.url)
        server = ServeProcess(home)
        assert post_github(server.url, pr_payload()).status_code == 202
        worker.wait_for(1)
        started = time.monotonic()
        assert server.stop() == 0
        waited = time.monotonic() - started
    assert waited >= 1.0, "the server stopped without waiting for the worker"
    assert task_row(home) == ("completed", 1)
    assert "waiting up to 10m for 1 tasks in flight" in server.log()


def test_a_drain_timeout_leaves_the_task_for_the_next_start(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.set(hang=True)
        endpoint_worker(home, "stuck", worker.url)
        server = ServeProcess(home, env={"MECHA_DRAIN_TIMEOUT": "300ms"})
        answer = post_github(server.url, pr_payload())
        worker.wait_for(1)
        assert server.stop() == 0  # not killed after stop()'s 30 s: the drain gave up
        assert "waiting up to 300ms for 1 tasks in flight" in server.log()
        assert task_row(home) == ("pending", 1)
        worker.set(hang=False)
        with ServeProcess(home) as again:
            [task] = wait_task(again.url, answer.json()["id"])
    assert task["state"] == "completed" and task["attempts"] == 2
    assert "sent again at the next start" in server.log()


def test_sighup_reloads_webhook_secrets(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    secrets = home / "secrets.yml"
    with ServeProcess(home) as server:
        body = pr_payload()
        assert post_github(server.url, body, secret="rotated-secret").status_code == 401
        secrets.write_text(secrets.read_text().replace("gh-webhook-secret-one", "rotated-secret"))
        os.kill(server.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "secrets.yml reloaded" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        assert post_github(server.url, body, secret="rotated-secret").status_code == 202
        secrets.write_text("github: [this is not a mapping\n")
        os.kill(server.pid, signal.SIGHUP)
        while "not reloaded, the old secrets stay" not in server.log():
            assert time.monotonic() < deadline + 5, server.log()
            time.sleep(0.05)
        assert post_github(server.url, body, secret="rotated-secret").status_code == 202
        assert "rotated-secret" not in server.log()
