"""Managed (Docker) workers through the CLI and a real `mecha serve`, on the real engine.

Persistent: `mecha worker start` → healthy container → webhook → task → serve restarted
while the container keeps running → `mecha worker stop` → `remove`. Disposable: a fresh
container per task, always removed (after success, a failed start, a timeout), and
what a SIGKILLed serve leaves behind is swept at its next start. Canary forge secrets
never reach a container or its task.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors  # type: ignore[import-untyped]
import httpx
import pytest

from mecha.runtimes.managed.docker import DockerRuntime
from mecha.store.sqlite.store import open_sqlite
from mecha.testing.serve_process import ServeProcess
from mecha.worker.kind import WorkerState
from tests.conftest import REPO
from tests.e2e.dispatching import FAST, RULE, wait_task
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload
from tests.services import docker_engine

IMAGE = "mecha-test-worker:latest"
CANARY_GITHUB = "ghp_CANARYcanaryCANARYcanary0123456789"
CANARY_GITLAB = "glpat-CANARYcanaryCANARY01"
CLAUDE_TOKEN = "sk-ant-api03-test-token-for-the-container-only"


@pytest.fixture(scope="module")
def sdk() -> Iterator[Any]:
    docker_engine()  # with the base image the test image builds on: nothing is pulled
    runtime = DockerRuntime(timeout=60)  # its client leaves no socket if the engine goes
    try:
        client = runtime.client()
        client.images.build(path=str(REPO / "tests" / "docker_image"), tag=IMAGE, rm=True)
        yield client
    finally:
        runtime.close()


def worker_home(tmp_path: Path, name: str, docker_lines: str, *, timeout: str = "20s") -> Path:
    home = make_home(
        tmp_path, config=FAST, github_token=CANARY_GITHUB, gitlab_token=CANARY_GITLAB,
        extra_secrets=f"tokens:\n  claude: {{default: {CLAUDE_TOKEN}}}\n",
    )  # fmt: skip
    path = home / f"{name}.yml"
    path.write_text(
        f"name: {name}\ntimeout: {timeout}\nmax_retries: 0\ndocker:\n  image: {IMAGE}\n"
        f"  token: claude.default\n{docker_lines}events:\n{RULE}"
        "policy:\n  comment: {allow: false}\n",
        encoding="utf-8",
    )
    done = mecha_cli(home, "worker", "add", str(path))
    assert done.returncode == 0, done.stderr
    return home


def serve(home: Path) -> ServeProcess:
    """A serve whose GitHub API is a closed loopback port (the canary token goes nowhere);
    a stop abandons tasks still running after one second."""
    env = {"GITHUB_API_URL": "http://127.0.0.1:9", "MECHA_DRAIN_TIMEOUT": "1s"}
    return ServeProcess(home, env=env)


class Box:
    """A container as the engine lists it (listing never races a removal, unlike inspect)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.id: str = row["Id"]
        self.name: str = row["Names"][0].lstrip("/")
        self.status: str = row["State"]


def containers(sdk: Any, worker: str) -> list[Box]:
    rows = sdk.api.containers(all=True, filters={"label": f"mecha.worker={worker}"})
    return [Box(row) for row in rows]


def answers_health(sdk: Any, container_id: str, within: float = 60) -> None:
    """Wait until the container answers GET /health with 200 on its published port."""
    ports = sdk.api.inspect_container(container_id)["NetworkSettings"]["Ports"]
    url = f"http://127.0.0.1:{ports['8080/tcp'][0]['HostPort']}/health"
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered 200"
        time.sleep(0.05)


def healthy_one(sdk: Any, worker: str) -> Box:
    """The first of ``worker``'s containers to answer GET /health (one that fails to start
    is removed, and the pool starts another)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for box in containers(sdk, worker):
            try:
                answers_health(sdk, box.id, within=5)
            except (docker.errors.NotFound, AssertionError, KeyError, TypeError):
                continue  # gone, or not healthy yet
            return box
        time.sleep(0.05)
    raise AssertionError(f"no container of {worker} ever answered GET /health")


def send(url: str, number: int = 7) -> str:
    answer = post_github(url, pr_payload(number=number))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def state_of(home: Path, name: str) -> WorkerState:
    store = open_sqlite(home / "mecha.db")
    try:
        return store.get_worker(name).state
    finally:
        store.close()


def no_canary(*texts: Any) -> None:
    blob = json.dumps(texts, default=str)
    assert CANARY_GITHUB not in blob and CANARY_GITLAB not in blob


def test_a_persistent_worker_runs_across_serve_restarts(tmp_path: Path, sdk: Any) -> None:
    home = worker_home(tmp_path, "boxed", "")
    started = mecha_cli(home, "worker", "start", "boxed")
    assert started.returncode == 0, started.stderr
    assert "healthy after" in started.stdout and state_of(home, "boxed") is WorkerState.ONLINE
    [box] = containers(sdk, "boxed")
    container = sdk.containers.get(box.id)
    try:
        with serve(home) as server:
            [first] = wait_task(server.url, send(server.url, 1))
        with serve(home) as server:  # the container kept running meanwhile
            [second] = wait_task(server.url, send(server.url, 2))
        logs = mecha_cli(home, "worker", "logs", "boxed", "--tail", "5")
    finally:
        stopped = mecha_cli(home, "worker", "stop", "boxed")
    assert first["state"] == second["state"] == "completed", (first, second)
    assert second["result"]["output"] == "echo: Review #2: Fix the thing"
    env = second["result"]["metadata"]["env"]
    digests = second["result"]["metadata"]["env_sha256"]
    # the one credential it names reached it; quoted in a result, it is stored masked
    assert digests["ANTHROPIC_API_KEY"] == hashlib.sha256(CLAUDE_TOKEN.encode()).hexdigest()
    assert env["ANTHROPIC_API_KEY"] == "[REDACTED]"
    no_canary(second["result"]["metadata"], container.attrs["Config"], container.attrs["Mounts"])
    assert logs.returncode == 0 and "POST /task" in logs.stdout
    assert stopped.returncode == 0 and containers(sdk, "boxed") == []
    assert state_of(home, "boxed") is WorkerState.OFFLINE
    removed = mecha_cli(home, "worker", "remove", "boxed")
    assert removed.returncode == 0, removed.stderr


def test_a_disposable_worker_gets_a_fresh_container_per_task(tmp_path: Path, sdk: Any) -> None:
    home = worker_home(tmp_path, "once", "  lifecycle: disposable\n")
    with serve(home) as server:
        tasks = [wait_task(server.url, send(server.url, n))[0] for n in (1, 2)]
        deadline = time.monotonic() + 60
        while containers(sdk, "once") and time.monotonic() < deadline:
            time.sleep(0.05)
        left = containers(sdk, "once")
    assert [t["state"] for t in tasks] == ["completed", "completed"], tasks
    hosts = {t["result"]["metadata"]["env"]["HOSTNAME"] for t in tasks}
    assert len(hosts) == 2  # two containers, one per task
    assert left == []  # each removed after its task
    no_canary(*(t["result"]["metadata"] for t in tasks))


def test_disposable_containers_are_removed_after_a_failed_start_and_a_timeout(
    tmp_path: Path, sdk: Any
) -> None:
    home = worker_home(tmp_path, "flaky", "  lifecycle: disposable\n", timeout="2s")
    bad = home / "bad.yml"
    bad.write_text(
        f"name: sick\ntimeout: 3s\nmax_retries: 0\ndocker:\n  image: {IMAGE}\n"
        "  lifecycle: disposable\n"
        f"  env: {{MECHA_TEST_HEALTH: '500'}}\nevents:\n{RULE}",
        encoding="utf-8",
    )
    assert mecha_cli(home, "worker", "add", str(bad)).returncode == 0
    rule = RULE.replace('prompt: "Review', 'prompt: "sleep 30 Review')
    slow = home / "flaky.yml"
    slow.write_text(slow.read_text().replace(RULE, rule))
    assert mecha_cli(home, "worker", "add", "--replace", str(slow)).returncode == 0
    with serve(home) as server:
        tasks = wait_task(server.url, send(server.url), count=2, timeout=60)
        deadline = time.monotonic() + 60
        while (containers(sdk, "flaky") or containers(sdk, "sick")) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = containers(sdk, "flaky") + containers(sdk, "sick")
    by_worker = {t["worker"]: t for t in tasks}
    assert by_worker["flaky"]["state"] == "failed"
    assert (
        "no answer from" in by_worker["flaky"]["error"]
        and "within 2s" in by_worker["flaky"]["error"]
    )
    assert by_worker["sick"]["state"] == "failed"
    assert "health" in by_worker["sick"]["error"].lower(), by_worker["sick"]["error"]
    assert left == []


def test_what_a_killed_serve_leaves_is_swept_at_the_next_start(tmp_path: Path, sdk: Any) -> None:
    home = worker_home(tmp_path, "orphan", "  lifecycle: disposable\n", timeout="60s")
    rule = RULE.replace('prompt: "Review', 'prompt: "sleep 60 Review')
    path = home / "orphan.yml"
    path.write_text(path.read_text().replace(RULE, rule))
    assert mecha_cli(home, "worker", "add", "--replace", str(path)).returncode == 0
    server = serve(home)
    send(server.url)
    deadline = time.monotonic() + 30
    while not (running := [c for c in containers(sdk, "orphan") if c.status == "running"]):
        assert time.monotonic() < deadline, "the disposable container never started"
        time.sleep(0.05)
    server.kill()
    [orphan] = running
    assert orphan.id in {c.id for c in containers(sdk, "orphan")}  # left behind by the crash
    # another Mecha's disposable container on the same engine (another home, another test
    # session) is in use: this serve's sweep leaves it alone
    owner = sdk.api.inspect_container(orphan.id)["Config"]["Labels"]["mecha.owner"]
    alien = sdk.containers.create(
        IMAGE, name=f"mecha-disposable-alien-{time.time_ns() % 10**16:016d}",
        labels={"mecha.worker": "alien", "mecha.lifecycle": "disposable",
                "mecha.owner": "0" * 16 if owner != "0" * 16 else "1" * 16},
    )  # fmt: skip
    try:
        with serve(home):
            # the requeued task gets a new container; the orphan is swept at the start
            remaining = {c.id for c in containers(sdk, "orphan")}
            assert [c.id for c in containers(sdk, "alien")] == [alien.id]
    finally:
        alien.remove(force=True)
    assert orphan.id not in remaining
    deadline = time.monotonic() + 60
    while containers(sdk, "orphan") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert containers(sdk, "orphan") == []  # the graceful stop removed the new one too


def test_a_warm_pool_has_a_container_ready_before_any_task(tmp_path: Path, sdk: Any) -> None:
    home = worker_home(tmp_path, "warm", "  lifecycle: disposable\n  pool: 1\n")
    with serve(home) as server:
        ready = healthy_one(sdk, "warm")  # listed once created; in the pool once healthy,
        time.sleep(1.0)  # which serve checks every 20 ms: a margin for a busy machine
        [task] = wait_task(server.url, send(server.url))
        assert task["result"]["metadata"]["env"]["HOSTNAME"] == ready.id[:12]
        deadline = time.monotonic() + 60
        while not [c for c in containers(sdk, "warm") if c.id != ready.id]:
            assert time.monotonic() < deadline, "the pool was not refilled"
            time.sleep(0.05)
    deadline = time.monotonic() + 60
    while containers(sdk, "warm") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert containers(sdk, "warm") == []  # a stopping serve removes its pool


def test_image_build_and_doctor_name_the_image_a_worker_needs(tmp_path: Path, sdk: Any) -> None:
    home = worker_home(tmp_path, "needs", "")
    missing = home / "missing.yml"
    missing.write_text(
        f"name: later\ndocker:\n  image: mecha-worker-gemini-nope:latest\nevents:\n{RULE}",
        encoding="utf-8",
    )
    assert mecha_cli(home, "worker", "add", str(missing)).returncode == 0
    built = mecha_cli(home, "image", "build", "base")
    doctor = mecha_cli(home, "doctor")
    wrong = mecha_cli(home, "image", "build", "cobol")
    assert built.returncode == 0, built.stderr
    assert "Step 1/" in built.stdout and "built mecha-worker-base" in built.stdout
    assert sdk.images.get("mecha-worker-base:latest")
    assert f"worker needs (managed): image {IMAGE} present" in doctor.stdout
    assert "image mecha-worker-gemini-nope:latest not on this host" in doctor.stdout
    assert "nothing is pulled" in doctor.stdout
    assert wrong.returncode == 2 and "cobol" in wrong.stderr
