"""A real `mecha serve` configured by MECHA_* variables alone (as in a container), the
precedence flag > environment > config.yml, and `mecha config --server` naming the source."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from mecha.testing.serve_process import ServeProcess
from tests.e2e.serving import make_home

ENV_KEY = "env-key-for-tests-0123456789"
FILE_KEY = "file-key-for-tests-012345678"
FLAG_KEY = "flag-key-for-tests-01234567"


def mecha(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with MECHA_HOME=``home`` and only the MECHA_* variables of ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    environ.pop("GITHUB_API_URL", None)
    environ.update({"MECHA_HOME": str(home), **env})
    return subprocess.run(
        [sys.executable, "-m", "mecha", *args], env=environ, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


@contextmanager
def taken_ports(count: int) -> Iterator[list[int]]:
    """Loopback ports held (bound and listening) meanwhile: a serve told to use one fails."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
            ports.append(sock.getsockname()[1])
        yield ports


def status(url: str, key: str = "") -> int:
    headers = {"X-API-Key": key} if key else {}
    return httpx.get(f"{url}/events", headers=headers, timeout=30).status_code


def lease_ms(url: str) -> int:
    lease: int = httpx.get(f"{url}/health", timeout=30).json()["node_lease_ms"]
    return lease


def test_serve_runs_on_mecha_variables_alone(tmp_path: Path) -> None:
    """No config.yml, no flags: MECHA_ADDR on every interface, MECHA_API_KEY opening the API
    to the key (as the container runs it), and a dispatch setting taken."""
    home = make_home(tmp_path)
    (home / "config.yml").unlink()
    env = {"MECHA_ADDR": "0.0.0.0:0", "MECHA_API_KEY": ENV_KEY, "MECHA_DISPATCH_LEASE": "7s"}
    with ServeProcess(home, env=env, addr=None) as server:
        log_head = server.log()
        assert "listening on http://0.0.0.0:" in log_head
        assert status(server.url) == 401  # beyond loopback, with a key: asked for, not closed
        assert status(server.url, "wrong-key-0123456789abc") == 401
        assert status(server.url, ENV_KEY) == 200
        assert lease_ms(server.url) == 7000
        log = server.log()
    assert "API closed" not in log and ENV_KEY not in log
    [line] = [line for line in log.splitlines() if "settings from the environment" in line]
    assert line.endswith(": MECHA_ADDR, MECHA_API_KEY, MECHA_DISPATCH_LEASE")
    shown = mecha(home, env, "config", "--server")
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:]}
    assert "0.0.0.0:0" in lines["addr"] and "env MECHA_ADDR" in lines["addr"]
    assert "[REDACTED]" in lines["api_key"] and "env MECHA_API_KEY" in lines["api_key"]
    assert "7s" in lines["dispatch.lease"] and "env MECHA_DISPATCH_LEASE" in lines["dispatch.lease"]
    assert ENV_KEY not in shown.stdout + shown.stderr
    as_json = json.loads(mecha(home, env, "config", "--server", "--json").stdout)
    addr = next(row for row in as_json if row["setting"] == "addr")
    assert addr == {"setting": "addr", "value": "0.0.0.0:0", "source": "env MECHA_ADDR",
                    "variable": "MECHA_ADDR"}  # fmt: skip


def test_a_flag_beats_the_environment_and_the_environment_beats_config_yml(
    tmp_path: Path,
) -> None:
    with taken_ports(2) as (file_port, env_port):
        config = f"addr: 127.0.0.1:{file_port}\napi_key: {FILE_KEY}\nmax_diff: 2MB\n" \
            "dispatch:\n  lease: 5s\n"  # fmt: skip
        home = make_home(tmp_path, config=config)
        (home / "config.yml").chmod(0o600)  # it holds a literal key
        env = {"MECHA_ADDR": f"127.0.0.1:{env_port}", "MECHA_API_KEY": ENV_KEY,
               "MECHA_DISPATCH_LEASE": "7s"}  # fmt: skip
        flags = ["--api-key", FLAG_KEY]
        with ServeProcess(home, env=env, addr="127.0.0.1:0", args=flags) as server:
            port = int(server.url.rpartition(":")[2])
            assert port not in (file_port, env_port)  # --addr over MECHA_ADDR and addr:
            assert status(server.url, FLAG_KEY) == 200  # --api-key over MECHA_API_KEY
            assert status(server.url, ENV_KEY) == status(server.url, FILE_KEY) == 401
            assert lease_ms(server.url) == 7000  # MECHA_DISPATCH_LEASE over dispatch: lease:
        env["MECHA_ADDR"] = "127.0.0.1:0"
        with ServeProcess(home, env=env, addr=None) as server:
            assert int(server.url.rpartition(":")[2]) != file_port  # MECHA_ADDR over addr:
            assert status(server.url, ENV_KEY) == 200  # MECHA_API_KEY over api_key:
            assert status(server.url, FILE_KEY) == 401
    shown = mecha(home, env, "config", "--server")
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:]}
    assert "env MECHA_ADDR" in lines["addr"] and "env MECHA_API_KEY" in lines["api_key"]
    assert lines["max_diff"].split()[1:3] == ["2MB", f"{home / 'config.yml'}:3"]
    assert FILE_KEY not in shown.stdout and ENV_KEY not in shown.stdout


def test_a_bad_variable_stops_serve_with_its_name_and_no_traceback(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    env = {"MECHA_DISPATCH_CONCURRENCY": "lots", "MECHA_API_KEY": "short-key"}
    for args in (("serve", "--addr", "127.0.0.1:0"), ("config", "--server")):
        done = mecha(home, env, *args)
        assert done.returncode == 1, done.stderr
        assert "2 problems in the environment:" in done.stderr
        assert 'MECHA_DISPATCH_CONCURRENCY="lots": concurrency must be a whole number' in (
            done.stderr
        )
        assert "MECHA_API_KEY: api_key is 9 characters" in done.stderr
        assert "short-key" not in done.stderr and "Traceback" not in done.stderr


def test_config_server_says_what_is_wrong_with_its_arguments(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    named = mecha(home, {}, "config", "--server", "reviewer")
    assert named.returncode == 2 and 'not worker "reviewer"' in named.stderr
    alone = mecha(home, {}, "config", "--json")
    assert alone.returncode == 2 and "--json goes with --server" in alone.stderr
    assert not (home / "mecha.db").exists()  # neither opened the store
