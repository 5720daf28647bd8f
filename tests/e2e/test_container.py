"""Mecha's own image, end to end: the root Dockerfile built with the real Docker engine,
run with a volume and MECHA_API_KEY, a signed GitHub webhook sent to its published port,
the task sent to a worker container (mecha-worker-base, echo backend) on a network of its
own, then a graceful `docker stop`.

The build context holds exactly what .dockerignore lets through, plus the host's CA bundle
as deploy/ca/extra-ca.crt (pip reaches PyPI during the build; some networks intercept
TLS). Needs a Docker engine with the local ``debian:bookworm-slim`` (tests/services.py
starts the engine and makes the image where it can); skipped without them, failed under
CI=true. Everything made here carries a test-unique name and is removed at the end
(the image with ``--no-prune``: its cached layers keep the next build fast).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.components import missing
from tests.e2e.serving import GITHUB_SECRET, post_github, pr_payload
from tests.services import REPO, docker_engine

pytestmark = pytest.mark.docker

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
KEY = "container-test-key-0123456789abcdef"
#: how long a build (cold: apt and PyPI downloads), a start and a stop may take
BUILD_TIMEOUT = 1800.0
HEALTHY_DEADLINE = 180.0
TASK_DEADLINE = 120.0
STOP_GRACE = 120
#: compose's worker files (echo.yml: an unmanaged worker at http://worker:8080), mounted
#: where compose mounts them
WORKERS = REPO / "deploy" / "workers"
UNIT_FILE = REPO / "deploy" / "mecha.service"


def docker(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> str:  # fmt: skip
    """``docker ARGS``'s stdout; the test fails with its stderr when it fails."""
    done = _docker(*args, stdin=stdin, env=env, timeout=timeout)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stdout[-3000:]}{done.stderr}"
    return done.stdout


def _docker(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **env} if env else None, check=False,
    )  # fmt: skip


def build_context(into: Path) -> Path:
    """The paths .dockerignore allows (``!path`` after ``*``), copied, with the host's CA."""
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = [line[1:] for line in lines if line.startswith("!")]
    assert "*" in lines and allowed, ".dockerignore is no longer an allowlist"
    junk = shutil.ignore_patterns("__pycache__", "*.py[cod]", "extra-ca.crt")
    for name in allowed:
        source, target = REPO / name, into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=junk)
        else:
            shutil.copy2(source, target)
    shutil.copy2(REPO / "Dockerfile", into / "Dockerfile")
    if HOST_CA.is_file():
        shutil.copy2(HOST_CA, into / "deploy" / "ca" / "extra-ca.crt")
    return into


@pytest.fixture(scope="module")
def mecha_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The root Dockerfile built under a test-unique tag; untagged at the end."""
    docker_engine()
    if shutil.which("docker") is None:
        missing("the docker command is not installed: apt-get install docker.io")
    context = build_context(tmp_path_factory.mktemp("mecha-image"))
    tag = f"mecha:pytest-{uuid.uuid4().hex[:10]}"
    docker("build", "-t", tag, str(context), timeout=BUILD_TIMEOUT)
    try:
        yield tag
    finally:
        _docker("rmi", "--no-prune", tag)


@dataclass
class Deployment:
    """One running Mecha container, its volume and its worker, by name."""

    container: str
    volume: str
    url: str

    def logs(self) -> str:
        done = _docker("logs", self.container)
        return done.stdout + done.stderr

    def health(self) -> str:
        return docker("inspect", "-f", "{{.State.Health.Status}}", self.container).strip()


@pytest.fixture
def deployment(mecha_image: str, worker_image: Callable[[str], str]) -> Iterator[Deployment]:
    """Mecha's container with a volume (secrets.yml), compose's worker files and the key in
    MECHA_API_KEY, on a network with an echo worker container; all removed after."""
    worker = worker_image("base")
    name = f"mecha-pytest-{uuid.uuid4().hex[:10]}"
    made: list[tuple[str, ...]] = []
    try:
        docker("network", "create", name)
        made.append(("network", "rm", name))
        docker("volume", "create", name)
        made.append(("volume", "rm", name))
        docker(
            "run", "-d", "--name", f"{name}-worker", "--network", name,
            "--network-alias", "worker", "--label", "mecha.test=container",
            "-e", "WORKER_BACKEND=echo", worker,
        )  # fmt: skip
        made.append(("rm", "-f", f"{name}-worker"))
        _seed(mecha_image, name)
        docker(
            "run", "-d", "--name", name, "--network", name, "-p", "127.0.0.1::21212",
            "-v", f"{name}:/data", "-v", f"{WORKERS}:/etc/mecha/workers:ro",
            "-e", "MECHA_API_KEY", "--label", "mecha.test=container",
            # the image's own check, asked every second instead of every 30 s
            "--health-interval", "1s", mecha_image, env={"MECHA_API_KEY": KEY},
        )  # fmt: skip
        made.append(("rm", "-f", name))
        [published] = docker("port", name, "21212/tcp").split()[:1]
        yield Deployment(container=name, volume=name, url=f"http://{published}")
    finally:
        for args in reversed(made):
            _docker(*args)


def _seed(image: str, volume: str) -> None:
    """secrets.yml (0600, owned by the image's user) in the volume, written through the
    image itself, as docs/deploy.md says to."""
    secrets = f"github:\n  webhook_secret: {GITHUB_SECRET}\n"
    write = "umask 077 && cat > /data/$0"
    docker(
        "run", "--rm", "-i", "-v", f"{volume}:/data", "--entrypoint", "sh", image,
        "-c", write, "secrets.yml", stdin=secrets,
    )  # fmt: skip


def wait_healthy(deployment: Deployment) -> None:
    """The image's HEALTHCHECK says healthy (a generous deadline: a busy machine is slow)."""
    deadline = time.monotonic() + HEALTHY_DEADLINE
    while (status := deployment.health()) != "healthy":
        assert status in ("starting", ""), f"{status}: {deployment.logs()}"
        assert time.monotonic() < deadline, f"not healthy in time: {deployment.logs()}"
        time.sleep(0.5)


def event_tasks(url: str, event_id: str) -> list[dict[str, Any]]:
    """The event's tasks once one has finished."""
    deadline = time.monotonic() + TASK_DEADLINE
    headers = {"Authorization": f"Bearer {KEY}"}
    while True:
        shown = httpx.get(f"{url}/event/{event_id}", headers=headers, timeout=10).json()
        tasks: list[dict[str, Any]] = shown.get("tasks", [])
        if any(t["state"] in ("completed", "failed") for t in tasks):
            return tasks
        assert time.monotonic() < deadline, f"no task of {event_id} finished: {shown}"
        time.sleep(0.2)


def test_a_signed_webhook_reaches_the_container_and_its_worker(deployment: Deployment) -> None:
    wait_healthy(deployment)
    url, name = deployment.url, deployment.container
    # /health is open; the API wants the key from MECHA_API_KEY
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    assert httpx.get(f"{url}/events", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-key-0123456789"}
    assert httpx.get(f"{url}/events", headers=wrong, timeout=10).status_code == 401
    keyed = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{url}/events", headers=keyed, timeout=10).json() == []
    # compose's worker, registered and checked (set online) as docs/deploy.md says
    docker("exec", name, "mecha", "worker", "add", "/etc/mecha/workers/echo.yml")
    docker("exec", name, "mecha", "worker", "start", "echo")

    answer = post_github(url, pr_payload(number=7))
    assert answer.status_code == 202, answer.text
    event_id = answer.json()["id"]
    assert post_github(url, pr_payload(), secret="a-wrong-secret").status_code == 401
    [task] = event_tasks(url, event_id)
    assert task["state"] == "completed", task
    assert task["worker"] == "echo"
    # the stored event, through the API and through the CLI in the container
    [event] = httpx.get(f"{url}/events", headers=keyed, timeout=10).json()
    assert event["id"] == event_id
    listed = docker("exec", name, "mecha", "event", "ls").splitlines()
    assert [line.split()[0] for line in listed[1:]] == [event_id[:12]], listed

    # the server runs as the image's user, and its key is on no command line
    top = docker("top", name, "-eo", "uid,pid,args").splitlines()
    serving = [line for line in top if "mecha serve" in line]
    assert serving and all(line.split()[0] == "10001" for line in serving), top
    assert not any(KEY in line for line in top), "the API key shows in ps"
    assert docker("exec", name, "id", "-u").strip() == "10001"

    docker("stop", "-t", str(STOP_GRACE), name, timeout=STOP_GRACE + 60)
    assert docker("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "0"
    log = deployment.logs()
    assert "mecha.serve: stopped" in log, log
    assert "Traceback" not in log and KEY not in log, log


def test_the_data_stays_in_the_volume(deployment: Deployment, mecha_image: str) -> None:
    """A stopped container's events are there for the next one on the same volume."""
    wait_healthy(deployment)
    answer = post_github(deployment.url, pr_payload(number=8))
    assert answer.status_code == 202, answer.text
    docker("stop", "-t", str(STOP_GRACE), deployment.container, timeout=STOP_GRACE + 60)
    listed = docker("run", "--rm", "-v", f"{deployment.volume}:/data", mecha_image, "event", "ls")
    assert [line.split()[0] for line in listed.splitlines()[1:]] == [answer.json()["id"][:12]]


#: Mecha's image with systemd as PID 1; dbus for systemd-run, procps for the unit's
#: ExecReload=/bin/kill (both on every Debian install, but not in the slim base)
SYSTEMD_IMAGE = """FROM {image}
USER root
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends systemd systemd-sysv procps dbus \\
 && rm -rf /var/lib/apt/lists/* \\
 && systemctl mask systemd-logind.service getty.target console-getty.service
COPY mecha.service /etc/systemd/system/mecha.service
COPY mecha.env /etc/mecha/mecha.env
COPY secrets.yml /var/lib/mecha/secrets.yml
RUN chmod 0600 /etc/mecha/mecha.env /var/lib/mecha/secrets.yml \\
 && chown -R mecha:mecha /var/lib/mecha && chmod 0700 /var/lib/mecha
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/lib/systemd/systemd"]
"""


@pytest.fixture
def systemd_host(mecha_image: str, tmp_path: Path) -> Iterator[str]:
    """A container booted by systemd with Mecha (the image's venv in /opt/mecha) and
    deploy/mecha.service as shipped, not started; removed after."""
    context = tmp_path / "systemd"
    context.mkdir()
    (context / "Dockerfile").write_text(SYSTEMD_IMAGE.format(image=mecha_image))
    shutil.copy2(UNIT_FILE, context / "mecha.service")
    (context / "mecha.env").write_text(f"MECHA_API_KEY={KEY}\n")
    (context / "secrets.yml").write_text(f"github:\n  webhook_secret: {GITHUB_SECRET}\n")
    tag = f"{mecha_image}-systemd"
    docker("build", "-t", tag, str(context), timeout=BUILD_TIMEOUT)
    name = f"mecha-pytest-systemd-{uuid.uuid4().hex[:10]}"
    try:
        # systemd as PID 1 mounts and makes namespaces for its units: the container needs
        # CAP_SYS_ADMIN, no seccomp profile of its own, and the host's cgroup tree
        docker(
            "run", "-d", "--name", name, "--cap-add", "SYS_ADMIN", "--security-opt",
            "seccomp=unconfined", "--tmpfs", "/run", "--tmpfs", "/run/lock",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--label", "mecha.test=container", tag,
        )  # fmt: skip
        _booted(name)
        yield name
    finally:
        _docker("rm", "-f", name)
        _docker("rmi", "--no-prune", tag)


def _booted(host: str) -> None:
    """Wait until systemd has booted the container (its bus answers a moment after start)."""
    deadline = time.monotonic() + HEALTHY_DEADLINE
    while True:
        done = _docker("exec", host, "systemctl", "is-system-running", "--wait", timeout=300)
        if done.stdout.strip() in ("running", "degraded"):
            return
        assert time.monotonic() < deadline, f"systemd did not boot: {done.stdout}{done.stderr}"
        time.sleep(0.5)


def unit(host: str, *properties: str) -> dict[str, str]:
    """``systemctl show mecha`` of ``properties``."""
    shown = docker("exec", host, "systemctl", "show", "mecha", *(f"-p{p}" for p in properties))
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def journal(host: str) -> str:
    return docker("exec", host, "journalctl", "-u", "mecha", "--no-pager", "-o", "cat")


def test_the_systemd_unit_runs_serve_hardened(systemd_host: str) -> None:
    """deploy/mecha.service under a real systemd: serve starts with every hardening on
    (MemoryDenyWriteExecute, the system call filter, no capabilities), takes a signed
    webhook, reloads secrets on `systemctl reload`, and stops cleanly."""
    host = systemd_host
    docker("exec", host, "systemctl", "start", "mecha")
    probe = (
        "import time, urllib.request as u\n"
        "for _ in range(600):\n"
        "    try: u.urlopen('http://127.0.0.1:21212/health', timeout=2); break\n"
        "    except OSError: time.sleep(0.2)\n"
        "else: raise SystemExit('no /health')\n"
    )
    done = _docker("exec", host, "/opt/mecha/bin/python", "-c", probe, timeout=300)
    assert done.returncode == 0, journal(host)
    state = unit(host, "MainPID", "MemoryDenyWriteExecute", "ActiveState", "User")
    assert state["ActiveState"] == "active" and state["MemoryDenyWriteExecute"] == "yes", state
    status = docker("exec", host, "cat", f"/proc/{state['MainPID']}/status")
    fields = dict(line.split(":", 1) for line in status.splitlines())
    assert fields["Uid"].split()[0] == "10001", fields["Uid"]
    assert fields["NoNewPrivs"].strip() == "1" and fields["Seccomp"].strip() == "2"
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0

    sent = docker(
        "exec", "-u", "mecha", "-e", "MECHA_HOME=/var/lib/mecha", host,
        "/opt/mecha/bin/mecha", "event", "send", "--sample", "pull_request.opened",
    )  # fmt: skip
    listed = (
        "import json, urllib.request as u\n"
        f"r = u.Request('http://127.0.0.1:21212/events', headers={{'X-API-Key': '{KEY}'}})\n"
        "print(json.dumps([e['id'] for e in json.load(u.urlopen(r, timeout=10))]))\n"
    )
    ids = json.loads(docker("exec", host, "/opt/mecha/bin/python", "-c", listed))
    assert len(ids) == 1 and ids[0][:12] in sent, (ids, sent)

    docker("exec", host, "systemctl", "reload", "mecha")
    deadline = time.monotonic() + HEALTHY_DEADLINE  # a busy machine boots slowly
    while "secrets.yml reloaded" not in journal(host):
        assert time.monotonic() < deadline, journal(host)
        time.sleep(0.2)
    docker("exec", host, "systemctl", "stop", "mecha", timeout=600)
    stopped = unit(host, "Result", "ExecMainStatus", "ActiveState")
    assert stopped == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}
    log = journal(host)
    assert "mecha.serve: stopped" in log and "Traceback" not in log, log


def test_the_image_stores_in_postgresql(mecha_image: str, pg_url: str) -> None:
    """compose.yml's set-up without compose (no registry to pull postgres from): the image
    with MECHA_DATABASE_URL stores the webhook in PostgreSQL (the [postgres] extra it
    carries). On the host's network, to reach the test cluster on loopback."""
    import psycopg

    with socket.socket() as probe:  # a free loopback port for serve
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = f"mecha-pytest-pg-{uuid.uuid4().hex[:10]}"
    docker("volume", "create", name)
    try:
        _seed(mecha_image, name)
        docker(
            "run", "-d", "--name", name, "--network", "host", "-v", f"{name}:/data",
            "-e", "MECHA_API_KEY", "-e", "MECHA_DATABASE_URL", "-e", f"MECHA_ADDR=127.0.0.1:{port}",
            "--label", "mecha.test=container", "--health-interval", "1s", mecha_image,
            env={"MECHA_API_KEY": KEY, "MECHA_DATABASE_URL": pg_url},
        )  # fmt: skip
        deployment = Deployment(container=name, volume=name, url=f"http://127.0.0.1:{port}")
        wait_healthy(deployment)
        answer = post_github(deployment.url, pr_payload(number=9))
        assert answer.status_code == 202, answer.text
        docker("stop", "-t", str(STOP_GRACE), name, timeout=STOP_GRACE + 60)
        assert docker("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "0"
        log = deployment.logs()
        assert "storing in PostgreSQL postgresql://" in log and "Traceback" not in log, log
    finally:
        _docker("rm", "-f", name)
        _docker("volume", "rm", name)
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute("SELECT id FROM events").fetchall()
    assert stored == [(answer.json()["id"],)]


def test_a_proxy_is_trusted_only_from_forwarded_allow_ips(
    deployment: Deployment, mecha_image: str
) -> None:
    """X-Forwarded-Proto counts only from FORWARDED_ALLOW_IPS (uvicorn's; loopback by
    default). A proxy on the host reaches the container from its network's gateway, so by
    default its https is ignored (cookies without Secure); naming the gateway trusts it."""
    wait_healthy(deployment)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}

    def login_cookie(url: str) -> str:
        answer = httpx.get(f"{url}/ui/login", headers=forwarded, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.headers["set-cookie"]

    assert "secure" not in login_cookie(deployment.url).lower()
    docker("stop", "-t", str(STOP_GRACE), deployment.container, timeout=STOP_GRACE + 60)
    network = deployment.container  # the fixture names its network after the container
    gateway = docker(
        "network", "inspect", network, "-f", "{{(index .IPAM.Config 0).Gateway}}"
    ).strip()
    name = f"{deployment.container}-proxied"
    try:
        docker(
            "run", "-d", "--name", name, "--network", network, "-p", "127.0.0.1::21212",
            "-v", f"{deployment.volume}:/data", "-e", "MECHA_API_KEY",
            "-e", f"FORWARDED_ALLOW_IPS={gateway}", "--label", "mecha.test=container",
            "--health-interval", "1s", mecha_image, env={"MECHA_API_KEY": KEY},
        )  # fmt: skip
        proxied = Deployment(container=name, volume=deployment.volume, url="")
        wait_healthy(proxied)
        [published] = docker("port", name, "21212/tcp").split()[:1]
        assert "; secure" in login_cookie(f"http://{published}").lower()
    finally:
        _docker("rm", "-f", name)


#: what runs under the unit's sandbox besides serve's own start: the native code Mecha
#: loads (psycopg's libpq, cryptography's RS256 for GitHub Apps, uvloop, orjson, pydantic-
#: core, httptools), then proof that writable-and-executable memory is refused there
NATIVE_CODE = """
import asyncio, mmap, sys
import httptools, jwt, orjson, psycopg, pydantic_core, uvloop
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
assert jwt.decode(jwt.encode({"iss": "1"}, key, algorithm="RS256"), key.public_key(),
                  algorithms=["RS256"]) == {"iss": "1"}
assert psycopg.pq.version() > 0 and psycopg.pq.__impl__ == "binary"
assert orjson.loads(orjson.dumps({"a": 1})) == {"a": 1}
assert uvloop.run(asyncio.sleep(0, result=7)) == 7
httptools.HttpRequestParser(object()); pydantic_core.SchemaValidator({"type": "int"})
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    print("native code ok; W+X memory refused")
else:
    sys.exit("W+X memory was allowed: MemoryDenyWriteExecute is not in force")
"""


def test_mecha_native_code_runs_under_the_units_sandbox(systemd_host: str) -> None:
    """The unit's sandbox (every [Service] line after "# Hardening", as shipped) on a
    transient service that loads the native code serve may load beyond its start."""
    text = UNIT_FILE.read_text(encoding="utf-8").split("# Hardening", 1)[1]
    lines = text.split("\n[", 1)[0].splitlines()[1:]  # up to the next section
    sandbox = [line for line in lines if "=" in line and not line.startswith("#")]
    assert "MemoryDenyWriteExecute=yes" in sandbox and len(sandbox) > 20, sandbox
    properties = [f"--property={line}" for line in ["User=mecha", *sandbox]]
    done = _docker(
        "exec", systemd_host, "systemd-run", "--wait", "--pipe", "--quiet", "--collect",
        *properties, "/opt/mecha/bin/python", "-c", NATIVE_CODE, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "native code ok; W+X memory refused" in done.stdout, done.stdout + done.stderr
