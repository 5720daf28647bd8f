"""The Docker runtime against the real engine: start, health, hardening, secrets, cleanup.

Needs a Docker engine with a local ``debian:bookworm-slim`` (nothing is pulled), which
tests/services.py starts or makes where it can; else these tests skip, except under
CI=true, where they fail. The test worker image (tests/docker_image) is built once per
session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mecha.result import TaskResult
from mecha.runtimes.contract import WorkerFailure
from mecha.runtimes.endpoint import send_task
from mecha.runtimes.http1 import Pool
from mecha.runtimes.managed.container_spec import (
    LABEL_OWNER,
    ContainerSpec,
    ContainerSpecError,
    container_spec,
    owner_label,
    read_host,
)
from mecha.runtimes.managed.docker import (
    DockerError,
    DockerRuntime,
    DockerUnavailable,
    ImageMissing,
    Started,
    WorkerStartError,
    endpoint_host,
)
from mecha.worker.spec import DockerSpec
from tests.canaries import canary_secrets
from tests.conftest import REPO
from tests.services import docker_engine

IMAGE = "mecha-test-worker:latest"
#: every container these tests make carries it, so the session can clean up after itself
TEST_LABEL = "mecha-test"
Make = Callable[..., ContainerSpec]


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerRuntime]:
    """The runtime under test; skips (fails under CI=true) when no engine answers."""
    docker_engine()
    runtime = DockerRuntime(health_deadline=30)
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def sdk(engine: DockerRuntime) -> Iterator[Any]:
    """A plain SDK client, to look at what the runtime made (as `docker inspect` would)."""
    looker = DockerRuntime(timeout=60)  # its client leaves no socket if the engine goes
    client = looker.client()
    try:
        yield client
    finally:
        for row in client.api.containers(all=True, filters={"label": TEST_LABEL}):
            client.api.remove_container(row["Id"], force=True)
        looker.close()


@pytest.fixture(scope="session")
def image(sdk: Any) -> str:
    """The test worker image, built once per session (layers cached between sessions)."""
    sdk.images.build(path=str(REPO / "tests" / "docker_image"), tag=IMAGE, rm=True, forcerm=True)
    return IMAGE


@pytest.fixture
def make(image: str, sdk: Any, home: Path) -> Make:
    """A ContainerSpec for a fresh worker name; keyword arguments go to container_spec."""

    def build(fields: dict[str, Any] | None = None, **options: Any) -> ContainerSpec:
        fields = dict(fields or {})
        labels = {TEST_LABEL: "1", **fields.pop("labels", {})}
        spec = DockerSpec.model_validate({"image": image, **fields, "labels": labels})
        host = read_host(spec, home=home, uid=os.getuid(), gid=os.getgid())
        options.setdefault("token_value", None)
        options.setdefault("api_key", "")
        name = options.pop("name", f"t-{secrets.token_hex(4)}")
        return container_spec(name, spec, host=host, **options)

    return build


@pytest.fixture
def started(engine: DockerRuntime) -> Iterator[Callable[[ContainerSpec], Started]]:
    """start(), with every container it made removed after the test."""
    made: list[str] = []

    def start(spec: ContainerSpec) -> Started:
        made.append(spec.name)
        return engine.start(spec)

    yield start
    for name in made:
        engine.remove(name)


def task(endpoint: str, prompt: str, *, api_key: str = "") -> TaskResult:
    async def send() -> TaskResult:
        pool = Pool()
        try:
            return await send_task(
                pool, endpoint, task_id="t1", prompt=prompt, context={}, api_key=api_key, timeout=10
            )
        finally:
            await pool.close()

    return asyncio.run(send())


def inspect(sdk: Any, name: str) -> dict[str, Any]:
    return dict(sdk.api.inspect_container(name))


def test_a_worker_starts_answers_a_task_and_stops(
    engine: DockerRuntime, make: Make, sdk: Any
) -> None:
    """start → healthy → POST /task answers → stop → remove, leaving nothing."""
    spec = make()
    up = engine.start(spec)
    try:
        assert up.endpoint.startswith("http://127.0.0.1:")
        assert task(up.endpoint, "hello").output == "echo: hello"
        assert [found.state for found in engine.find(spec.worker)] == ["running"]
        assert engine.stop(spec.name, timeout=5)
        assert inspect(sdk, spec.name)["State"]["Status"] == "exited"
    finally:
        assert engine.remove(up.container_id)
    assert engine.find(spec.worker) == []
    assert not engine.stop(spec.name)
    assert not engine.remove(spec.name)


def test_the_container_is_hardened(
    started: Callable[[ContainerSpec], Started], make: Make, sdk: Any
) -> None:
    """No capabilities, no new privileges, non-root, pid limit, init, loopback port, labels."""
    spec = make()
    started(spec)
    attrs = inspect(sdk, spec.name)
    config, host_config = attrs["Config"], attrs["HostConfig"]
    assert host_config["CapDrop"] == ["ALL"]
    assert host_config["SecurityOpt"] == ["no-new-privileges:true"]
    assert host_config["PidsLimit"] == 1024
    assert host_config["Init"] is True
    assert config["User"] == spec.user
    assert not config["User"].startswith("0:")
    assert config["Labels"]["mecha.worker"] == spec.worker
    bindings = attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {binding["HostIp"] for binding in bindings} == {"127.0.0.1"}
    container = sdk.containers.get(spec.name)
    assert container.exec_run(["id", "-u"]).output.decode().strip() == spec.user.split(":")[0]
    status = container.exec_run(["cat", "/proc/self/status"]).output.decode()
    assert "CapEff:\t0000000000000000" in status
    assert "NoNewPrivs:\t1" in status


def test_resource_limits_reach_the_engine(
    started: Callable[[ContainerSpec], Started], make: Make, sdk: Any
) -> None:
    """cpu, memory and pids become NanoCpus, Memory and PidsLimit."""
    spec = make({"resources": {"cpu": 0.5, "memory": "256M", "pids": 64}})
    started(spec)
    host_config = inspect(sdk, spec.name)["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["Memory"] == 256 * 1024 * 1024
    assert host_config["PidsLimit"] == 64


def test_expose_without_an_api_key_is_refused_before_any_container(
    engine: DockerRuntime, make: Make
) -> None:
    """Publishing on every interface needs a key."""
    with pytest.raises(ContainerSpecError, match="no api_key"):
        make({"expose": True}, name="exposed-nokey")
    assert engine.find("exposed-nokey") == []


def test_an_exposed_worker_listens_everywhere_and_demands_its_key(
    started: Callable[[ContainerSpec], Started], make: Make, sdk: Any
) -> None:
    """0.0.0.0 binding; /task without the key is 401, with it answers."""
    key = secrets.token_urlsafe(16)
    spec = make({"expose": True}, api_key=key)
    up = started(spec)
    bindings = inspect(sdk, spec.name)["NetworkSettings"]["Ports"]["8080/tcp"]
    assert "0.0.0.0" in {binding["HostIp"] for binding in bindings}
    with pytest.raises(WorkerFailure) as refused:
        task(up.endpoint, "no key")
    assert refused.value.status == 401
    assert task(up.endpoint, "with key", api_key=key).output == "echo: with key"


@pytest.mark.parametrize("cwd", ["~/.ssh", "/etc", "~", "~/.mecha/state"])
def test_sensitive_workspaces_are_refused_before_any_container(
    engine: DockerRuntime, make: Make, home: Path, cwd: str
) -> None:
    """~/.ssh, /etc, the home folder itself … never get as far as the engine."""
    (home / ".ssh").mkdir()
    (home / ".mecha" / "state").mkdir(parents=True)
    name = f"deny-{secrets.token_hex(4)}"
    with pytest.raises(ContainerSpecError, match="may not be mounted"):
        make({"cwd": cwd}, name=name)
    assert engine.find(name) == []


def test_the_workspace_is_mounted_read_write(
    started: Callable[[ContainerSpec], Started], make: Make, sdk: Any, tmp_path: Path
) -> None:
    """A safe folder is /workspace; a file written inside appears on the host."""
    workspace = tmp_path / "project"
    workspace.mkdir()
    if os.getuid() == 0:  # root's workers run as the workspace's owner: make it someone
        os.chown(workspace, 1000, 1000)
    spec = make({"cwd": str(workspace)})
    started(spec)
    mounts = inspect(sdk, spec.name)["Mounts"]
    assert [(m["Source"], m["Destination"], m["RW"]) for m in mounts] == [
        (str(workspace), "/workspace", True)
    ]
    done = sdk.containers.get(spec.name).exec_run(
        ["sh", "-c", "echo from-container > /workspace/out.txt"]
    )
    assert done.exit_code == 0, done.output
    written = workspace / "out.txt"
    assert written.read_text() == "from-container\n"
    assert f"{written.stat().st_uid}:{written.stat().st_gid}" == spec.user


def test_credentials_are_mounted_read_only(
    started: Callable[[ContainerSpec], Started], make: Make, sdk: Any, home: Path
) -> None:
    """~/.claude is /home/worker/.claude, readable, not writable; HOME points there."""
    folder = home / ".claude"
    folder.mkdir()
    (folder / "settings.json").write_text("{}")
    folder.chmod(0o755)
    spec = make({"credentials": ["claude"]})
    started(spec)
    attrs = inspect(sdk, spec.name)
    assert [(m["Destination"], m["RW"]) for m in attrs["Mounts"]] == [
        ("/home/worker/.claude", False)
    ]
    assert "HOME=/home/worker" in attrs["Config"]["Env"]
    container = sdk.containers.get(spec.name)
    assert container.exec_run(["cat", "/home/worker/.claude/settings.json"]).output == b"{}"
    refused = container.exec_run(["touch", "/home/worker/.claude/new"])
    assert refused.exit_code != 0
    assert b"Read-only file system" in refused.output


CLAUDE = "sk-ant-oat01-CANARYCLAUDE" + "c" * 30
CANARIES = canary_secrets(CLAUDE)


def test_only_the_workers_llm_token_reaches_the_container(
    started: Callable[[ContainerSpec], Started], make: Make, sdk: Any
) -> None:
    """Env, labels, mounts, command, the process environment: no canary but the claude token."""
    spec = make(
        {"token": "claude.default", "env": {"CLAUDE_MODEL": "opus"}, "plugins": ["p@m"]},
        token_value=CANARIES.resolve("claude.default"),
        withheld=CANARIES.values(),
    )
    started(spec)
    attrs = inspect(sdk, spec.name)
    assert f"CLAUDE_CODE_OAUTH_TOKEN={CLAUDE}" in attrs["Config"]["Env"]
    seen = json.dumps(
        [attrs["Config"], attrs["HostConfig"], attrs["Mounts"], attrs["Args"], attrs["Path"]]
    )
    inside = sdk.containers.get(spec.name).exec_run(["cat", "/proc/1/environ"]).output.decode()
    for value in CANARIES.values() - {CLAUDE}:
        assert value not in seen
        assert value not in inside
    assert [e for e in attrs["Config"]["Env"] if CLAUDE in e] == [
        f"CLAUDE_CODE_OAUTH_TOKEN={CLAUDE}"
    ]
    assert CLAUDE not in repr(spec)


def test_a_worker_naming_another_secret_is_refused_before_any_container(
    engine: DockerRuntime, make: Make
) -> None:
    """docker.env carrying a webhook secret is refused; the engine never sees it."""
    with pytest.raises(ContainerSpecError, match="not the worker's own token"):
        make(
            {"token": "claude.default", "env": {"HOOK": "canary-github-hook-1"}},
            name="leaky",
            token_value=CLAUDE,
            withheld=CANARIES.values(),
        )
    assert engine.find("leaky") == []


def test_a_container_that_exits_fails_fast_with_its_last_log_lines(
    engine: DockerRuntime, make: Make
) -> None:
    """Exited before healthy → WorkerStartError quoting its output; nothing left behind."""
    # stdout and stderr are copied separately: the pause keeps their lines in order
    script = "echo first-line; for i in $(seq 30); do echo line-$i; done; sleep 0.3; echo oops >&2"
    script += "; exit 3"
    spec = dataclasses.replace(make(), command=("sh", "-c", script))
    # "exited", not "did not answer" at the 30 s health deadline: it failed fast
    with pytest.raises(WorkerStartError, match=r"exited \(code 3\)") as failed:
        engine.start(spec)
    message = str(failed.value)
    assert "line-30" in message
    assert "oops" in message
    assert "first-line" not in message  # only the last 20 lines
    assert "HOME=" not in message
    assert engine.find(spec.worker) == []


def test_a_worker_that_never_gets_healthy_is_removed_at_the_deadline(
    engine: DockerRuntime, make: Make
) -> None:
    """A server answering 500 to /health: the deadline passes, its logs are quoted."""
    spec = make({"env": {"MECHA_TEST_HEALTH": "500"}})
    began = time.monotonic()
    with pytest.raises(WorkerStartError, match=r"did not answer GET .*/health with 200") as failed:
        engine.start(spec, deadline=1.5)
    # at the deadline given, long before the runtime's own (health_deadline) would pass
    assert 1.5 <= time.monotonic() - began < engine.health_deadline
    assert "test worker listening on :8080" in str(failed.value)
    assert engine.find(spec.worker) == []


def test_a_stale_container_of_the_same_name_is_replaced(
    started: Callable[[ContainerSpec], Started], make: Make, engine: DockerRuntime
) -> None:
    """Starting again removes the old container first."""
    spec = make()
    first = started(spec)
    second = started(spec)
    assert first.container_id != second.container_id
    assert [found.container_id for found in engine.find(spec.worker)] == [second.container_id]


def test_logs_and_following_them(
    started: Callable[[ContainerSpec], Started], make: Make, engine: DockerRuntime
) -> None:
    """logs() returns the tail; follow_logs() yields lines as they come."""
    spec = make()
    started(spec)
    assert "test worker listening on :8080" in engine.logs(spec.name, tail=5)
    lines = engine.follow_logs(spec.name, tail=1)
    try:
        assert next(lines).startswith("test worker listening")
    finally:
        lines.close()


def test_sweep_removes_disposable_leftovers(engine: DockerRuntime, make: Make, sdk: Any) -> None:
    """This Mecha's disposable containers go, running or not, and those no Mecha claims;
    another Mecha's (another home on the same engine) and persistent ones stay."""
    mine, other = owner_label("/srv/a/mecha.db"), owner_label("/srv/b/mecha.db")
    left = [make({"lifecycle": "disposable"}, owner=mine) for _ in range(2)]
    unclaimed = make({"lifecycle": "disposable"})
    theirs = make({"lifecycle": "disposable"}, owner=other)
    persistent = make()
    for spec in [*left, unclaimed, theirs, persistent]:
        sdk.containers.create(**spec.create_kwargs())
    sdk.containers.get(left[0].name).start()
    try:
        assert engine.sweep_disposable(mine) >= 3
        assert all(engine.find(spec.worker) == [] for spec in [*left, unclaimed])
        assert [c.labels[LABEL_OWNER] for c in engine.find(theirs.worker)] == [other]
        assert len(engine.find(persistent.worker)) == 1
    finally:
        engine.remove(persistent.name)
        engine.remove(theirs.name)


def test_a_missing_image_says_to_build_it(engine: DockerRuntime, make: Make) -> None:
    """Never pulled: the error says how to build it, and no container is made."""
    spec = dataclasses.replace(make(), image="mecha-no-such-image:never")
    assert not engine.image_present(spec.image)
    assert engine.image_present(IMAGE)
    with pytest.raises(ImageMissing) as missing:
        engine.start(spec)
    assert "mecha image build claude" in missing.value.hint
    assert engine.find(spec.worker) == []


def test_an_unreachable_engine_says_to_start_it(tmp_path: Path) -> None:
    """No socket: DockerUnavailable whose hint names dockerd and DOCKER_HOST."""
    runtime = DockerRuntime(f"unix://{tmp_path}/no.sock", timeout=2)
    with pytest.raises(DockerUnavailable) as unreachable:
        runtime.version()
    assert "DOCKER_HOST" in unreachable.value.hint
    assert isinstance(unreachable.value, DockerError)
    with pytest.raises(DockerUnavailable):
        runtime.sweep_disposable()
    runtime.close()


@pytest.mark.parametrize(
    ("daemon", "host"),
    [
        ("unix:///var/run/docker.sock", "127.0.0.1"),
        ("tcp://127.0.0.1:2375", "127.0.0.1"),
        ("tcp://build-box.lan:2376", "build-box.lan"),
        ("ssh://me@10.0.0.5", "10.0.0.5"),
        ("tcp://[fd00::5]:2375", "[fd00::5]"),
    ],
)
def test_the_endpoint_host_is_the_remote_daemons(daemon: str, host: str) -> None:
    """A remote engine publishes ports on its own host; a local one on loopback."""
    assert endpoint_host(daemon) == host


def test_create_to_healthy_time(engine: DockerRuntime, make: Make) -> None:
    """p50 of create → healthy over 10 starts of the test image, printed for the record."""
    times = []
    for _ in range(10):
        spec = make()
        up = engine.start(spec)
        times.append(up.healthy_after)
        engine.remove(up.container_id)
    p50 = statistics.median(times)
    print(f"\ncreate→healthy: p50 {p50 * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    assert len(times) == 10 and all(took > 0 for took in times)
