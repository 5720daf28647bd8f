"""Managed workers' containers on a Docker engine, through the official ``docker`` SDK.

``DockerRuntime.start`` runs a ``ContainerSpec`` (``mecha.runtimes.managed.container_spec``):
it removes a stale container of the same name, creates and starts the new one, reads
its published port back and polls ``GET /health`` until the worker answers 200. A
container that never gets healthy is removed and its last log lines are put in the
error. Images are never pulled.

Every call blocks (callers run them in an executor); every SDK or transport exception
becomes a ``DockerError`` whose hint says what to do. The SDK is imported when the
first call is made, so importing this module stays cheap.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from mecha.errors import MechaError
from mecha.runtimes.managed.container_spec import (
    CONTAINER_PORT,
    DISPOSABLE,
    LABEL_LIFECYCLE,
    LABEL_OWNER,
    LABEL_WORKER,
    ContainerSpec,
)
from mecha.runtimes.managed.probe import docker_host

logger = logging.getLogger(__name__)
#: the SDK has no type information: its objects are Any here
DockerClient = Any
Container = Any

#: seconds one Engine API call may take
API_TIMEOUT = 30.0
#: seconds a new container has to answer GET /health with 200
HEALTH_DEADLINE = 90.0
#: seconds between health polls (20 ms answers ~25 ms sooner than 50 ms, measured)
HEALTH_INTERVAL = 0.02
#: the most one poll may take
HEALTH_REQUEST_TIMEOUT = 1.0
#: seconds between looks at whether the container is still running while polling
STATE_INTERVAL = 0.5
#: log lines an error quotes from a container that never got healthy
LOG_LINES = 20
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_UNREACHABLE_HINT = (
    "start the Docker engine (dockerd, or `systemctl start docker`) and check DOCKER_HOST "
    "or the worker's docker.host; `docker info` must answer"
)


class DockerError(MechaError):
    """The Docker engine could not do what a managed worker needs."""


class DockerUnavailable(DockerError):
    """The Docker engine does not answer."""


class ImageMissing(DockerError):
    """The worker's image is not on the engine (Mecha never pulls)."""


class WorkerStartError(DockerError):
    """A worker's container never answered GET /health; ``logs`` holds its last lines."""

    def __init__(self, message: str, *, hint: str = "", logs: str = "") -> None:
        super().__init__(message, hint=hint)
        self.logs = logs


@dataclass(frozen=True, slots=True)
class Started:
    """A worker container that answers GET /health."""

    container_id: str
    name: str
    endpoint: str
    #: seconds from create to the first healthy answer
    healthy_after: float


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container as the engine lists it."""

    container_id: str
    name: str
    #: created, running, exited, …
    state: str
    labels: Mapping[str, str] = field(default_factory=dict)


class DockerRuntime:
    """One Docker engine: ``host`` (unix://, tcp://, ssh://) or DOCKER_HOST / the socket."""

    def __init__(
        self,
        host: str = "",
        *,
        timeout: float = API_TIMEOUT,
        health_deadline: float = HEALTH_DEADLINE,
        health_interval: float = HEALTH_INTERVAL,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.daemon = docker_host(host, environ)
        self.timeout = timeout
        self.health_deadline = health_deadline
        self.health_interval = health_interval
        self._client: DockerClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DockerRuntime({self.daemon!r})"

    def close(self) -> None:
        """Close the connection pool to the engine."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def version(self) -> str:
        """The engine's version, e.g. "20.10.24"; DockerUnavailable if it does not answer."""
        with self._engine("ask the engine its version"):
            return str(self._api().version()["Version"])

    def image_present(self, image: str) -> bool:
        """Whether ``image`` is in the engine's local store."""
        errors = _sdk().errors
        with self._engine(f"look up image {image}"):
            try:
                self._api().inspect_image(image)
            except errors.NotFound:
                return False
        return True

    def start(self, spec: ContainerSpec, *, deadline: float | None = None) -> Started:
        """Run ``spec`` until it answers GET /health with 200; DockerError if it does not.

        A container of the same name is removed first. ``deadline`` (seconds from now,
        default ``health_deadline``) bounds the wait; a container that exits or misses
        it is removed and WorkerStartError quotes its last log lines.
        """
        began = time.monotonic()
        self.remove(spec.name)
        with self._engine(f"create container {spec.name}", image=spec.image):
            container = self._docker().containers.create(**spec.create_kwargs())
        try:
            with self._engine(f"start container {spec.name}", image=spec.image):
                container.start()
                endpoint = self._endpoint(container)
            self._wait_healthy(container, endpoint, began + (deadline or self.health_deadline))
        except BaseException:
            self._discard(container.id)
            raise
        return Started(container.id, spec.name, endpoint, time.monotonic() - began)

    def stop(self, name_or_id: str, *, timeout: float = 5) -> bool:
        """Stop a container (SIGTERM, SIGKILL after ``timeout`` s); False if there is none."""
        errors = _sdk().errors
        with self._engine(f"stop container {name_or_id}"):
            try:
                self._api().stop(name_or_id, timeout=round(timeout))
            except errors.NotFound:
                return False
        return True

    def remove(self, name_or_id: str) -> bool:
        """Remove a container, running or not, with its anonymous volumes; False if none."""
        errors = _sdk().errors
        with self._engine(f"remove container {name_or_id}"):
            try:
                self._api().remove_container(name_or_id, force=True, v=True)
            except errors.NotFound:
                return False
            except errors.APIError as exc:
                if "already in progress" not in str(exc.explanation or ""):
                    raise
        return True

    def _discard(self, container_id: str) -> None:
        """Remove a container that failed to start; the first error is the one to report."""
        try:
            self.remove(container_id)
        except DockerError:
            logger.warning("could not remove container %s after it failed", container_id[:12])

    def logs(self, name_or_id: str, *, tail: int | None = 100) -> str:
        """The container's last ``tail`` log lines (stdout and stderr; None: all)."""
        with self._engine(f"read the logs of {name_or_id}"):
            raw = self._api().logs(
                name_or_id, stdout=True, stderr=True, tail="all" if tail is None else tail
            )
        return cast(bytes, raw).decode("utf-8", "replace")

    def follow_logs(self, name_or_id: str, *, tail: int = 100) -> Generator[str, None, None]:
        """The last ``tail`` log lines, then each new one as the container writes it."""
        with self._engine(f"follow the logs of {name_or_id}"):
            stream = self._api().logs(name_or_id, stream=True, follow=True, tail=tail)
        try:
            pending = b""
            with self._engine(f"follow the logs of {name_or_id}"):
                for chunk in stream:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    yield from (line.decode("utf-8", "replace") for line in lines)
            if pending:
                yield pending.decode("utf-8", "replace")
        finally:
            stream.close()
            # the SDK shuts the socket but keeps the response's file on it open
            response = getattr(stream, "_response", None)
            if response is not None:
                response.close()

    def find(self, worker: str) -> list[ContainerInfo]:
        """Every container (running or not) labelled as worker ``worker``'s."""
        return self._list(f"{LABEL_WORKER}={worker}")

    def sweep_disposable(self, owner: str = "") -> int:
        """Remove disposable worker containers (orphans after a crash); how many.

        With ``owner``, only that Mecha's (``mecha.owner``) and those no Mecha claims (made
        before the label existed): another Mecha's on the same engine are in use.
        """
        found = self._list(_DISPOSABLE_LABEL)
        if owner:
            found = [c for c in found if c.labels.get(LABEL_OWNER, owner) == owner]
        return sum(self.remove(c.container_id) for c in found)

    def _list(self, label: str) -> list[ContainerInfo]:
        with self._engine("list containers"):
            rows = self._api().containers(all=True, filters={"label": label})
        return [
            ContainerInfo(
                container_id=row["Id"],
                name=(row.get("Names") or ["/"])[0].lstrip("/"),
                state=row.get("State", ""),
                labels=row.get("Labels") or {},
            )
            for row in rows
        ]

    def _endpoint(self, container: Container) -> str:
        container.reload()
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(CONTAINER_PORT)
        if not bindings:
            self._check_running(container)  # one that exited at once has no ports
            raise DockerError(
                f"container {container.name} publishes no port for {CONTAINER_PORT}",
                hint="the engine did not publish the worker's port; check `docker info`",
            )
        return f"http://{endpoint_host(self.daemon)}:{bindings[0]['HostPort']}"

    def _wait_healthy(self, container: Container, endpoint: str, until: float) -> None:
        parts = urlsplit(endpoint)
        host, port = parts.hostname or "", parts.port or 80
        next_look = time.monotonic() + STATE_INTERVAL
        while not health_ok(host, port, timeout=HEALTH_REQUEST_TIMEOUT):
            now = time.monotonic()
            if now >= until:
                self._start_failed(container, f"did not answer GET {endpoint}/health with 200")
            if now >= next_look:
                next_look = now + STATE_INTERVAL
                self._check_running(container)
            time.sleep(min(self.health_interval, max(until - now, 0)))

    def _check_running(self, container: Container) -> None:
        with self._engine(f"inspect container {container.name}"):
            container.reload()
        state = container.attrs.get("State") or {}
        if state.get("Status") not in ("created", "running", "restarting"):
            code = state.get("ExitCode")
            self._start_failed(container, f"exited (code {code}) before it answered GET /health")

    def _start_failed(self, container: Container, what: str) -> None:
        try:
            lines = self.logs(container.id, tail=LOG_LINES).rstrip()
        except DockerError:
            lines = ""
        quoted = "\n".join(f"  | {line}" for line in lines.splitlines()) or "  (no output)"
        raise WorkerStartError(
            f"worker container {container.name} {what}; it was removed. "
            f"Its last log lines:\n{quoted}",
            hint="the image must serve the worker contract on port 8080 (GET /health, "
            "POST /task); check its command and the worker's env",
            logs=lines,
        )

    def _docker(self) -> DockerClient:
        with self._lock:
            if self._client is None:
                self._reachable()
                _warn_plaintext(self.host)
                self._client = _connect(self.host, self.timeout)
            return self._client

    def _reachable(self) -> None:
        """For a unix socket, connect once first: the SDK leaks the socket of a failed try."""
        parts = urlsplit(self.daemon)
        if parts.scheme != "unix":
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(self.timeout)
            try:
                probe.connect(parts.path)
            except OSError as exc:
                raise DockerUnavailable(
                    f"cannot reach the Docker engine at {self.daemon}: {exc.strerror or exc}",
                    hint=_UNREACHABLE_HINT,
                ) from None

    def client(self) -> DockerClient:
        """The SDK client (for what this class does not wrap, e.g. image builds)."""
        return self._docker()

    def _api(self) -> Any:
        return self._docker().api

    @contextmanager
    def _engine(self, what: str, *, image: str = "") -> Iterator[None]:
        """Turn whatever the SDK or its transport raises into a DockerError."""
        import requests

        errors = _sdk().errors
        try:
            yield
        except errors.ImageNotFound:
            raise _image_missing(image or what) from None
        except errors.APIError as exc:
            detail = exc.explanation or str(exc)
            raise DockerError(
                f"the Docker engine refused to {what}: {detail}",
                hint="see the engine's message above; `docker info` shows its state",
            ) from None
        except requests.exceptions.Timeout:
            raise DockerError(
                f"the Docker engine at {self.daemon} did not answer within "
                f"{self.timeout:g} s (asked to {what})",
                hint="the engine is overloaded or stuck; `docker info` must answer quickly",
            ) from None
        except (errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerUnavailable(
                f"cannot reach the Docker engine at {self.daemon} to {what}: {_cause(exc)}",
                hint=_UNREACHABLE_HINT,
            ) from None


_DISPOSABLE_LABEL = f"{LABEL_LIFECYCLE}={DISPOSABLE}"


def endpoint_host(daemon: str) -> str:
    """The host a published port is reached at: the remote daemon's, else 127.0.0.1."""
    parts = urlsplit(daemon)
    name = parts.hostname or ""
    if parts.scheme in ("tcp", "ssh", "http", "https") and name and name not in _LOOPBACK:
        return f"[{name}]" if ":" in name else name
    return "127.0.0.1"


def health_ok(host: str, port: int, *, timeout: float) -> bool:
    """One ``GET /health``: True on 200, False on anything else or no answer."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        answer = connection.getresponse()
        answer.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return answer.status == 200


def _sdk() -> Any:
    """The docker SDK, imported on first use (it brings requests along)."""
    import docker  # type: ignore[import-untyped]

    return docker


def _connect(host: str, timeout: float) -> DockerClient:
    docker = _sdk()
    if host:
        return docker.DockerClient(base_url=host, timeout=timeout)
    return docker.from_env(timeout=timeout)


def _warn_plaintext(host: str) -> None:
    """A worker's tcp:// host is spoken to without TLS: say so unless it is loopback."""
    if urlsplit(host).scheme == "tcp" and endpoint_host(host) != "127.0.0.1":
        logger.warning(
            "the Docker engine at %s is reached over plain tcp: anyone on the way can run "
            "containers on it; prefer ssh:// or a TLS-protected DOCKER_HOST",
            host,
        )


def _image_missing(image: str) -> ImageMissing:
    return ImageMissing(
        f"the image {image} is not on this Docker engine, and Mecha never pulls images",
        hint="build it: mecha image build claude (the stock worker image), or "
        f"`docker build -t {image} …` / `docker load` for your own",
    )


def _cause(exc: BaseException) -> str:
    """The deepest message in an exception chain: "No such file or directory", …"""
    seen: BaseException | None = exc
    text = str(exc)
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        text = str(seen) or text
        seen = seen.__cause__ or seen.__context__
    return text
