"""images/base builds with the real Docker engine and serves the worker contract.

Needs a Docker engine with the local ``debian:bookworm-slim`` (tests/services.py starts
the engine and runs ``images/make-base.sh`` where it can) and the docker command. Skipped
without them; under CI=true those are failures instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mecha.result import failure_of
from tests.components import missing
from tests.images.conftest import REPO, contract
from tests.services import docker_engine

pytestmark = pytest.mark.docker

IMAGE = "mecha-worker-base:pytest"
KEY = "image-test-key-0123456789"
HEALTH_TIMEOUT = 60.0


def _docker(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def base_image() -> str:
    """Build images/base (tagged IMAGE) and return its name."""
    docker_engine()
    if shutil.which("docker") is None:
        missing("the docker command is not installed: apt-get install docker.io")
    context = REPO / "images"
    built = _docker(
        "build", "-f", str(context / "base" / "Dockerfile"), "-t", IMAGE, str(context),
        timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


@pytest.fixture
def container(base_image: str) -> Iterator[str]:
    """The worker image running as an arbitrary user, as Mecha runs it; removed after."""
    started = _docker(
        "run", "-d", "-p", "127.0.0.1::8080", "--user", "4321:4321", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--label", "mecha.test=images",
        "-e", "HOME=/tmp", "-e", "WORKER_BACKEND=echo", "-e", f"WORKER_API_KEY={KEY}",
        base_image,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    name = started.stdout.strip()
    try:
        yield name
    finally:
        _docker("rm", "-f", name)


def _url(name: str) -> str:
    published = _docker("port", name, "8080/tcp").stdout.split()
    assert published, _docker("logs", name).stderr
    return f"http://{published[0]}"


def _wait_healthy(url: str, name: str) -> httpx.Response:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=2.0)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if response.status_code == 200:
            return response
        time.sleep(0.2)
    logs = _docker("logs", name)
    pytest.fail(f"no healthy worker: {logs.stdout}{logs.stderr}", pytrace=False)


def test_base_image_serves_health_and_tasks(container: str) -> None:
    url = _url(container)
    health = _wait_healthy(url, container)
    assert health.json()["backend"] == "echo"
    refused = httpx.post(f"{url}/task", json={"prompt": "hi"}, timeout=10)
    assert refused.status_code == 401
    response = httpx.post(
        f"{url}/task",
        json={"id": "t1", "prompt": "hello from the host", "context": {}},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    result = contract(response.json())
    assert result.output == "hello from the host"
    assert result.comment is not None
    assert not failure_of(result)
    stopped = _docker("stop", "-t", "60", container)
    assert stopped.returncode == 0
    # exit 0 after "stopping": it handled SIGTERM (137 would be the SIGKILL after 60 s)
    assert _docker("inspect", "-f", "{{.State.ExitCode}}", container).stdout.strip() == "0"
    assert "stopping" in _docker("logs", container).stderr, "the worker ignored SIGTERM"


def test_codex_backend_copies_a_read_only_codex_home(base_image: str, tmp_path: Path) -> None:
    """A read-only ~/.codex mount (host credentials) gets a writable copy for the CLI."""
    dot_codex = tmp_path / "codex"
    dot_codex.mkdir()
    (dot_codex / "auth.json").write_text('{"tokens": "x"}')
    dot_codex.chmod(0o755)
    (dot_codex / "auth.json").chmod(0o644)
    script = (
        "import json, os; from mecha_worker.backends.codex import environment; "
        "home = environment(dict(os.environ)).get('CODEX_HOME', ''); "
        "print(json.dumps({'home': home, 'files': sorted(os.listdir(home)) if home else [],"
        " 'writable': os.access(home, os.W_OK) if home else False}))"
    )
    ran = _docker(
        "run", "--rm", "--user", "4321:4321", "--cap-drop", "ALL",
        "-v", f"{dot_codex}:/home/worker/.codex:ro", "-e", "HOME=/home/worker",
        "--entrypoint", "python3", base_image, "-c", script,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    assert found == {"home": "/tmp/mecha-codex-home-4321", "files": ["auth.json"], "writable": True}
