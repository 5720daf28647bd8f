"""The deployment files agree with Mecha and with each other, checked without running them:
deploy/compose.yml (parsed; `docker compose config` where compose is installed),
deploy/mecha.service (parsed, and `systemd-analyze verify` / `security --offline` where
systemd-analyze is installed), the Dockerfile and .dockerignore, and serve's own refusal of a weak
MECHA_API_KEY. tests/e2e/test_container.py runs the image and the unit for real.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from mecha.duration import parse_duration
from tests.components import missing
from tests.e2e.serving import mecha_cli

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "mecha.service"
#: serve's HTTP shutdown waits this long for open connections before its drain
#: (uvicorn's timeout_graceful_shutdown in src/mecha/cli/serve.py)
CONNECTIONS_GRACE = 30.0


def compose() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load((DEPLOY / "compose.yml").read_text()))


def dockerfile() -> list[tuple[str, str]]:
    """The root Dockerfile's instructions: (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text(encoding="utf-8"))
    rows = [line.strip() for line in text.splitlines()]
    pairs = [row.split(None, 1) for row in rows if row and not row.startswith("#")]
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs]


def instruction(name: str) -> list[str]:
    return [args for kind, args in dockerfile() if kind == name]


def final_stage(name: str) -> list[str]:
    """``name``'s arguments in the image's own stage (after the last FROM)."""
    rows = dockerfile()
    last = max(i for i, (kind, _) in enumerate(rows) if kind == "FROM")
    return [args for kind, args in rows[last:] if kind == name]


def image_env() -> dict[str, str]:
    [env] = final_stage("ENV")
    return dict(re.findall(r"(\w+)=(\S+)", env))


def variables_mecha_reads() -> set[str]:
    """Every MECHA_* name in Mecha's source."""
    names: set[str] = set()
    for path in (REPO / "src" / "mecha").rglob("*.py"):
        names |= set(re.findall(r"[\"'](MECHA_[A-Z0-9_]+)[\"']", path.read_text("utf-8")))
    return names


# ---------------------------------------------------------------- compose


def test_compose_sets_only_variables_mecha_reads() -> None:
    services = compose()["services"]
    read = variables_mecha_reads()
    assert {"MECHA_API_KEY", "MECHA_DATABASE_URL", "MECHA_HOME"} <= read
    for name, service in services.items():
        unread = {v for v in service.get("environment", {}) if v.startswith("MECHA_")} - read
        assert not unread, f"compose service {name} sets {unread}, which Mecha never reads"
    mecha = services["server"]["environment"]
    assert mecha["MECHA_DATABASE_URL"].startswith("postgresql://mecha:")
    assert mecha["MECHA_DATABASE_URL"].endswith("@postgres:5432/mecha")


def test_compose_agrees_with_the_dockerfile() -> None:
    mecha = compose()["services"]["server"]
    [port] = instruction("EXPOSE")
    [volume] = instruction("VOLUME")
    assert image_env()["MECHA_HOME"] == volume == "/data"
    assert image_env()["MECHA_ADDR"] == f"0.0.0.0:{port}"
    published = [str(p).rsplit(":", 1)[1] for p in mecha["ports"]]
    assert published == [port], "compose must publish the port the image listens on"
    assert all(str(p).startswith("127.0.0.1:") for p in mecha["ports"]), "loopback only"
    assert any(v.endswith(f":{volume}") for v in mecha["volumes"]), "the data volume"
    assert mecha["build"]["context"] == ".." and mecha["build"]["dockerfile"] == "Dockerfile"


def test_compose_stop_grace_covers_the_drain() -> None:
    mecha = compose()["services"]["server"]
    drain = parse_duration(mecha["environment"]["MECHA_DRAIN_TIMEOUT"])
    assert parse_duration(mecha["stop_grace_period"]) > drain + CONNECTIONS_GRACE


def test_compose_worker_is_the_registered_worker_file() -> None:
    """The worker profile builds an image that exists here, and deploy/workers/echo.yml
    (which compose mounts into Mecha) reaches it by its service name."""
    services = compose()["services"]
    worker = services["worker"]
    assert worker["profiles"] == ["worker"]
    context = (DEPLOY / worker["build"]["context"]).resolve()
    built = context / worker["build"]["dockerfile"]
    assert built.is_file(), f"compose builds the worker from {built}, which is missing"
    assert "EXPOSE 8080" in built.read_text()
    spec = yaml.safe_load((DEPLOY / "workers" / "echo.yml").read_text())
    assert spec["endpoint"] == "http://worker:8080"
    mounted = [v for v in services["server"]["volumes"] if v.startswith("./workers:")]
    assert mounted == ["./workers:/etc/mecha/workers:ro"]


def test_the_compose_worker_file_is_valid(tmp_path: Path) -> None:
    done = mecha_cli(tmp_path, "worker", "validate", str(DEPLOY / "workers" / "echo.yml"))
    assert done.returncode == 0 and "ok" in done.stdout, done.stdout + done.stderr


def test_compose_required_variables_are_in_env_example() -> None:
    text = (DEPLOY / "compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == {"MECHA_API_KEY", "POSTGRES_PASSWORD"}
    example = (DEPLOY / "env.example").read_text()
    given = dict(line.split("=", 1) for line in example.splitlines() if "=" in line)
    assert set(given) - {"COMPOSE_PROJECT_NAME"} == required
    assert given["COMPOSE_PROJECT_NAME"] == "mecha"


def test_compose_config_where_compose_is_installed(tmp_path: Path) -> None:
    """`docker compose config` (or Debian's docker-compose 1.29) accepts the file; without
    compose the test is skipped, and fails under CI=true."""
    command = _compose_command()
    if command is None:  # CI installs Debian's docker-compose (.ci/run)
        missing("neither `docker compose` nor docker-compose is installed")
    env = {"MECHA_API_KEY": "k" * 24, "POSTGRES_PASSWORD": "p" * 24, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [*command, "-f", str(DEPLOY / "compose.yml"), "--profile", "worker", "config", "-q"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


# ---------------------------------------------------------------- systemd

#: key → the value deploy/mecha.service must give it (None: any value)
HARDENING: dict[str, str | None] = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
    "AmbientCapabilities": "", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "@system-service", "SystemCallArchitectures": "native",
    "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes", "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectControlGroups": "yes", "UMask": "0077",
    "StateDirectory": "mecha", "User": "mecha", "Restart": "on-failure",
    "KillSignal": "SIGTERM", "EnvironmentFile": None, "TimeoutStopSec": None,
}  # fmt: skip


def unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) of every assignment, repeated keys included."""
    entries, section = [], ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{UNIT.name}: not key=value: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def test_the_unit_holds_every_hardening_key() -> None:
    service: dict[str, list[str]] = {}
    for section, key, value in unit_entries():
        if section == "Service":
            service.setdefault(key, []).append(value)
    for key, wanted in HARDENING.items():
        assert key in service, f"{UNIT.name} lacks {key}="
        if wanted is not None:
            assert wanted in service[key], f"{key}={service[key]}, wanted {wanted!r}"
    assert "~@privileged" in service["SystemCallFilter"]
    assert service["ExecStart"] == ["/opt/mecha/bin/mecha serve"]  # MECHA_ADDR: serve's own
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"], "SIGHUP reloads secrets.yml"
    environment = dict(v.split("=", 1) for v in service["Environment"])
    assert environment["MECHA_HOME"] == "/var/lib/mecha"  # StateDirectory=mecha
    assert environment["MECHA_ADDR"].startswith("127.0.0.1:"), "behind a proxy: loopback"
    assert set(environment) <= variables_mecha_reads() | {"MECHA_ADDR"}
    drain = parse_duration(environment["MECHA_DRAIN_TIMEOUT"])
    [stop] = service["TimeoutStopSec"]
    assert _timespan(stop) > drain + CONNECTIONS_GRACE, "systemd would SIGKILL mid-drain"


def _timespan(text: str) -> float:
    """A systemd time span of the forms this unit uses: 90s, 6min, 1h."""
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    parts = re.fullmatch(r"(\d+)\s*(s|sec|min|m|h)", text)
    assert parts, f"TimeoutStopSec={text}: write it as 90s, 6min or 1h"
    return float(parts[1]) * units[parts[2]]


@pytest.fixture
def analyze(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """systemd-analyze on a copy of the unit whose ExecStart names an installed mecha
    (verify checks the program exists; /opt/mecha is where docs/deploy.md installs it)."""
    program = shutil.which("systemd-analyze")
    if program is None:
        missing("systemd-analyze is not installed: apt-get install systemd")
    installed = Path(sys.executable).parent / "mecha"
    assert installed.is_file(), f"no mecha next to {sys.executable}"
    copy = tmp_path / "mecha.service"
    copy.write_text(UNIT.read_text().replace("/opt/mecha/bin/mecha", str(installed)))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [program, *args, str(copy)], capture_output=True, text=True, timeout=120,
            cwd=tmp_path, check=False,
        )  # fmt: skip

    return run


def test_systemd_analyze_verify_finds_nothing(
    analyze: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    done = analyze("verify")
    # an unknown or misspelt key is only a warning: any output at all fails
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stderr


def test_systemd_analyze_security_rates_the_unit_ok(
    analyze: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    done = analyze("security", "--offline=true", "--no-pager")
    rated = re.search(r"Overall exposure level for mecha\.service: ([\d.]+) (\w+)", done.stdout)
    if rated is None and "offline" in done.stderr:
        missing(f"this systemd-analyze has no --offline: {done.stderr.strip()}")
    assert rated, done.stdout + done.stderr
    assert float(rated[1]) <= 2.0 and rated[2] == "OK", rated[0]


# ---------------------------------------------------------------- the image's files


def test_the_dockerfile_pulls_nothing_and_runs_as_its_own_user() -> None:
    assert [f.split()[0] for f in instruction("FROM")] == ["debian:bookworm-slim"] * 2
    [user] = instruction("USER")
    assert user == "mecha"
    [health] = instruction("HEALTHCHECK")
    assert "/health" in health and "curl" not in health
    [entrypoint] = instruction("ENTRYPOINT")
    assert entrypoint == '["tini", "--", "mecha"]', "signals reach serve through tini"
    assert image_env()["MECHA_ADDR"].startswith("0.0.0.0:")


def test_dockerignore_lets_through_what_the_dockerfile_copies() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*") :] == [line for line in lines if not line.startswith("#")]
    allowed = [line[1:] for line in lines if line.startswith("!")]
    sources = [args.split()[0] for args in instruction("COPY") if not args.startswith("--from")]
    for source in sources:
        path = source.rstrip("/")
        assert any(path == a or path.startswith(f"{a}/") for a in allowed), source
        assert (REPO / path).exists(), source
    assert not any(a.startswith((".git", ".venv", "tests")) for a in allowed)


def test_serve_refuses_a_weak_key_by_its_variable(tmp_path: Path) -> None:
    """The image's entrypoint is `mecha`: serve itself reads MECHA_API_KEY and MECHA_ADDR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    env.update({"MECHA_API_KEY": "short", "MECHA_HOME": str(tmp_path),
                "MECHA_ADDR": "127.0.0.1:1"})  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "mecha", "serve"], capture_output=True,
        text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "MECHA_API_KEY: api_key is 5 characters" in done.stderr, done.stderr
    assert "short" not in done.stderr and "Traceback" not in done.stderr
