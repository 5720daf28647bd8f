"""Read-only questions to a Docker Engine over its HTTP API: which version, is an image here.

Used by ``mecha doctor``. Standard library only (http.client over the unix socket or
tcp), so it starts fast and closes every socket it opens. Managed workers are run by the
Docker runtime, not from here.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

DEFAULT_HOST = "unix:///var/run/docker.sock"


class DockerUnreachable(Exception):
    """The engine did not answer, or answered with an error."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def docker_host(explicit: str = "", environ: Mapping[str, str] | None = None) -> str:
    """The daemon URL: the worker's ``docker.host``, else ``DOCKER_HOST``, else the socket."""
    env = os.environ if environ is None else environ
    return explicit or env.get("DOCKER_HOST") or DEFAULT_HOST


def _get(host: str, path: str, *, timeout: float) -> tuple[int, Any]:
    parts = urlsplit(host)
    conn: http.client.HTTPConnection
    if parts.scheme == "unix":
        conn = _UnixConnection(parts.path, timeout)
    elif parts.scheme in ("tcp", "http"):
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 2375, timeout=timeout)
    else:
        raise DockerUnreachable(f"{host}: only unix:// and tcp:// daemons can be probed here")
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
    except OSError as exc:
        raise DockerUnreachable(f"{host}: {exc.strerror or exc}") from None
    finally:
        conn.close()
    try:
        return answer.status, json.loads(body) if body else None
    except ValueError:
        raise DockerUnreachable(f"{host}: answered something that is not the Engine API") from None


def engine_version(host: str, *, timeout: float = 3.0) -> dict[str, Any]:
    """``GET /version``: Version, ApiVersion, …"""
    status, body = _get(host, "/version", timeout=timeout)
    if status != 200 or not isinstance(body, dict):
        raise DockerUnreachable(f"{host}: GET /version answered HTTP {status}")
    return body


def image_present(host: str, image: str, *, timeout: float = 3.0) -> bool:
    """``GET /images/{image}/json``: whether the image is in the engine's local store."""
    status, _ = _get(host, f"/images/{quote(image, safe='/:@')}/json", timeout=timeout)
    if status not in (200, 404):
        raise DockerUnreachable(f"{host}: image inspect answered HTTP {status}")
    return status == 200
