"""`mecha worker start` / `stop` as a user runs them (child processes), against a real worker
on loopback (InstantWorker) and a real database; a real `mecha serve` for the hand-over."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mecha.store import WorkerRecord
from mecha.store.sqlite.store import open_sqlite
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from mecha.worker.kind import WorkerState
from tests.conftest import EXAMPLES
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload, settled
from tests.services import docker_engine


@pytest.fixture
def worker() -> Iterator[InstantWorker]:
    with InstantWorker() as running:
        yield running


@pytest.fixture
def mecha_home(home: Path, tmp_path: Path) -> Path:
    """A MECHA_HOME with secrets; HOME is the test's own (conftest's ``home``)."""
    return make_home(tmp_path)


def add(mecha_home: Path, name: str, endpoint: str, extra: str = "") -> None:
    path = mecha_home / f"{name}.yml"
    path.write_text(f"name: {name}\nendpoint: {endpoint}\n{extra}", encoding="utf-8")
    done = mecha_cli(mecha_home, "worker", "add", str(path))
    assert done.returncode == 0, done.stderr


def record(mecha_home: Path, name: str) -> WorkerRecord:
    store = open_sqlite(mecha_home / "mecha.db")
    try:
        return store.get_worker(name)
    finally:
        store.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_start_marks_a_healthy_worker_online_at_its_endpoint(
    mecha_home: Path, worker: InstantWorker
) -> None:
    add(mecha_home, "alpha", worker.url + "/")
    done = mecha_cli(mecha_home, "worker", "start", "alpha")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"started alpha: online at {worker.url}\n")
    now = record(mecha_home, "alpha")
    assert (now.state, now.endpoint, now.error) == (WorkerState.ONLINE, worker.url, "")
    assert now.started_at > 0
    listed = mecha_cli(mecha_home, "worker", "ls").stdout.splitlines()[1].split()
    assert listed == ["alpha", "live", "online", worker.url, "ok"]


@pytest.mark.parametrize(
    ("status", "answered"),
    [(500, "answered a status other than 200"), (503, "answered 503 (busy or not ready)")],
)
def test_start_of_an_unhealthy_worker_fails_and_records_why(
    mecha_home: Path, worker: InstantWorker, status: int, answered: str
) -> None:
    worker.health_status = status
    add(mecha_home, "alpha", worker.url)
    done = mecha_cli(mecha_home, "worker", "start", "alpha")
    assert done.returncode == 1
    assert f"error: alpha is not started: GET {worker.url}/health {answered}" in done.stderr
    assert "hint: start the service" in done.stderr
    assert "Traceback" not in done.stderr
    now = record(mecha_home, "alpha")
    assert (now.state, now.error) == (WorkerState.ERROR, f"health check failed: {answered}")


def test_start_of_a_worker_nobody_answers_for_fails(mecha_home: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    add(mecha_home, "alpha", url)
    done = mecha_cli(mecha_home, "worker", "start", "alpha")
    assert done.returncode == 1
    assert f"GET {url}/health got no answer (connection refused" in done.stderr
    assert record(mecha_home, "alpha").state is WorkerState.ERROR


def test_start_again_checks_again(mecha_home: Path, worker: InstantWorker) -> None:
    add(mecha_home, "alpha", worker.url)
    assert mecha_cli(mecha_home, "worker", "start", "alpha").returncode == 0
    again = mecha_cli(mecha_home, "worker", "start", "alpha")
    assert again.returncode == 0
    assert (
        again.stdout
        == f"alpha is already online at {worker.url} (GET /health answered 200 just now)\n"
    )
    worker.health_status = 500
    failing = mecha_cli(mecha_home, "worker", "start", "alpha")
    assert failing.returncode == 1
    assert record(mecha_home, "alpha").state is WorkerState.ERROR
    worker.health_status = 200
    recovered = mecha_cli(mecha_home, "worker", "start", "alpha")
    assert recovered.returncode == 0, recovered.stderr
    assert record(mecha_home, "alpha").state is WorkerState.ONLINE


def test_the_endpoint_is_read_from_the_environment_at_start(
    mecha_home: Path, worker: InstantWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHA_URL", worker.url)
    add(mecha_home, "alpha", "${ALPHA_URL}")
    assert mecha_cli(mecha_home, "worker", "start", "alpha").returncode == 0
    assert record(mecha_home, "alpha").endpoint == worker.url
    mecha_cli(mecha_home, "worker", "stop", "alpha")
    monkeypatch.delenv("ALPHA_URL")
    unset = mecha_cli(mecha_home, "worker", "start", "alpha")
    assert unset.returncode == 1
    assert "ALPHA_URL" in unset.stderr
    assert record(mecha_home, "alpha").state is WorkerState.OFFLINE


def test_stop_marks_it_offline_and_says_its_tasks_wait(
    mecha_home: Path, worker: InstantWorker
) -> None:
    add(mecha_home, "alpha", worker.url)
    mecha_cli(mecha_home, "worker", "start", "alpha")
    done = mecha_cli(mecha_home, "worker", "stop", "alpha")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "stopped alpha: its new tasks wait in its queue until mecha worker start alpha\n"
    )
    now = record(mecha_home, "alpha")
    assert (now.state, now.endpoint) == (WorkerState.OFFLINE, "")
    assert mecha_cli(mecha_home, "worker", "stop", "alpha").stdout == "alpha is offline already\n"
    assert mecha_cli(mecha_home, "worker", "remove", "alpha").returncode == 0


def test_a_worker_in_error_can_be_stopped(mecha_home: Path) -> None:
    add(mecha_home, "alpha", f"http://127.0.0.1:{closed_port()}")
    mecha_cli(mecha_home, "worker", "start", "alpha")
    assert mecha_cli(mecha_home, "worker", "stop", "alpha").returncode == 0
    assert record(mecha_home, "alpha").state is WorkerState.OFFLINE


def test_an_adapter_worker_is_started_by_serve_not_by_hand(mecha_home: Path) -> None:
    assert (
        mecha_cli(mecha_home, "worker", "add", str(EXAMPLES / "local-ollama.yml")).returncode == 0
    )
    start = mecha_cli(mecha_home, "worker", "start", "local-ollama")
    assert start.returncode == 2
    assert "adapter workers run inside `mecha serve`, which starts them itself" in start.stderr
    assert "hint: start mecha serve" in start.stderr
    store = open_sqlite(mecha_home / "mecha.db")
    store.set_worker_state("local-ollama", WorkerState.ONLINE)
    store.close()
    stop = mecha_cli(mecha_home, "worker", "stop", "local-ollama")
    assert stop.returncode == 2
    assert "local-ollama is an adapter worker, run by `mecha serve`" in stop.stderr
    assert "it stops when mecha serve stops" in stop.stderr
    assert record(mecha_home, "local-ollama").state is WorkerState.ONLINE


def test_a_managed_worker_whose_image_is_missing_says_how_to_build_it(mecha_home: Path) -> None:
    docker_engine()
    path = mecha_home / "boxed.yml"
    path.write_text("name: boxed\ndocker:\n  image: mecha-worker-nope:latest\n", encoding="utf-8")
    assert mecha_cli(mecha_home, "worker", "add", str(path)).returncode == 0
    start = mecha_cli(mecha_home, "worker", "start", "boxed")
    assert start.returncode != 0
    assert "the image mecha-worker-nope:latest is not on this Docker engine" in start.stderr
    assert "mecha image build" in start.stderr and "Traceback" not in start.stderr
    found = record(mecha_home, "boxed")
    assert found.state is WorkerState.ERROR and "mecha-worker-nope" in found.error


def test_an_unknown_worker_is_named(mecha_home: Path) -> None:
    for command in ("start", "stop"):
        done = mecha_cli(mecha_home, "worker", command, "ghost")
        assert done.returncode == 1
        assert 'no worker named "ghost" is registered' in done.stderr


def test_a_task_waiting_for_an_offline_worker_goes_out_once_it_is_started(
    mecha_home: Path, worker: InstantWorker
) -> None:
    rule = "events:\n  - source: github\n    on: [pull_request.opened]\n    prompt: Review it\n"
    add(mecha_home, "alpha", worker.url, rule)
    with ServeProcess(mecha_home) as serve:
        sent = post_github(serve.url, pr_payload())
        event = settled(serve.url, sent.json()["id"])
        [task] = event["tasks"]
        time.sleep(1.5)  # the dispatcher polls every second: it must not send to an offline worker
        assert worker.received == 0
        started = mecha_cli(mecha_home, "worker", "start", "alpha")
        assert started.returncode == 0, started.stderr
        [received] = worker.wait_for(1, timeout=10)
    assert (received.id, received.prompt) == (task["id"], "Review it")
