"""Managed workers' Docker engine, as the CLI and `mecha serve` reach it.

The one place a ``DockerRuntime`` is made (``docker_runtime``): for a persistent
worker's container (``start_container``, ``remove_container``: `mecha worker
start/stop/remove`, and serve when a definition changes), its logs (`mecha worker logs`),
the image builds (`mecha image build`) and serve's disposable containers
(``disposables``, which makes one per engine through it). The probes `mecha doctor`
runs (``engine_version``, ``image_present``) ask the Engine API directly, with no SDK.
Every call blocks, as ``DockerRuntime``'s do; serve runs them in an executor.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path

from mecha.runtimes.managed.container_spec import owner_label, persistent_name
from mecha.runtimes.managed.docker import API_TIMEOUT, DockerRuntime, Started
from mecha.runtimes.managed.image_build import BUILD_TIMEOUT, build_on
from mecha.runtimes.managed.pools import Disposables, remove_persistent, start_persistent
from mecha.runtimes.managed.probe import (
    DockerUnreachable,
    docker_host,
    engine_version,
    image_present,
)
from mecha.secrets import Secrets
from mecha.worker.record import WorkerRecord
from mecha.worker.spec import WorkerSpec

__all__ = [
    "DockerUnreachable",
    "build_images",
    "container_logs",
    "disposables",
    "docker_host",
    "docker_runtime",
    "engine_version",
    "follow_container_logs",
    "image_present",
    "remove_container",
    "start_container",
    "worker_logs",
]


def docker_runtime(host: str = "", *, timeout: float = API_TIMEOUT) -> DockerRuntime:
    """The engine at ``host`` (unix://, tcp://, ssh://; "" = DOCKER_HOST or the socket)."""
    return DockerRuntime(host, timeout=timeout)


def start_container(name: str, spec: WorkerSpec, *, secrets: Secrets, home: Path) -> Started:
    """Create worker ``name``'s container (replacing one of that name), wait until healthy.

    A MechaError says why it did not start (the container is then removed).
    """
    return start_persistent(name, spec, secrets=secrets, home=home, runtime_for=docker_runtime)


def remove_container(name: str, *, host: str, container_id: str = "") -> bool:
    """Stop and remove worker ``name``'s container; False if it had none."""
    return remove_persistent(name, host=host, container_id=container_id, runtime_for=docker_runtime)


def container_logs(name: str, *, host: str, container_id: str, tail: int) -> str:
    """The last ``tail`` log lines of worker ``name``'s container."""
    runtime = docker_runtime(host)
    try:
        return runtime.logs(container_id or persistent_name(name), tail=tail)
    finally:
        runtime.close()


def worker_logs(record: WorkerRecord, tail: int) -> str:
    """The last ``tail`` log lines of a managed worker's container, on the engine its
    stored definition names (the dashboard's worker page)."""
    docker = record.definition.get("docker") or {}
    host = docker.get("host", "") if isinstance(docker, dict) else ""
    return container_logs(record.name, host=host, container_id=record.container_id, tail=tail)


def follow_container_logs(
    name: str, *, host: str, container_id: str, tail: int
) -> Generator[str, None, None]:
    """The last ``tail`` log lines of worker ``name``'s container, then each new one."""
    runtime = docker_runtime(host)
    try:
        yield from runtime.follow_logs(container_id or persistent_name(name), tail=tail)
    finally:
        runtime.close()


def build_images(
    which: str,
    *,
    host: str = "",
    ca_bundle: Path | None = None,
    no_cache: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> list[str]:
    """Build ``which`` (and the base); the image tags built. ``progress`` gets each step."""
    runtime = docker_runtime(host, timeout=BUILD_TIMEOUT)
    try:
        return build_on(runtime, which, ca_bundle=ca_bundle, no_cache=no_cache, progress=progress)
    finally:
        runtime.close()


def disposables(
    home: Path, secrets: Callable[[], Secrets], *, database: Path | None
) -> Disposables:
    """Fresh containers per task for disposable workers, with their warm pools.

    Their ``mecha.owner`` label comes from ``database`` (resolved), so a serve sweeps only
    the containers its own database's workers left behind (none: no label).
    """
    owner = owner_label(str(database.resolve())) if database is not None else ""
    return Disposables(home=home, secrets=secrets, owner=owner, runtime_for=docker_runtime)
