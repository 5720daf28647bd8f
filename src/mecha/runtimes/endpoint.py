"""The worker contract as seen from Mecha: ``GET /health`` (and, later, ``POST /task``).

httpx is imported inside the functions so commands that never probe stay fast to start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

HEALTH_TIMEOUT = 5.0


class Health(StrEnum):
    """What a health probe found."""

    OK = "ok"  # 200
    BUSY = "busy"  # 503 while a task runs (stock worker images answer so)
    UNHEALTHY = "unhealthy"  # any other status
    UNREACHABLE = "unreachable"  # no answer: refused, reset, timed out


async def probe_all(urls: Sequence[str], *, timeout: float = HEALTH_TIMEOUT) -> list[Health]:
    """Ask every ``url``/health at once; results in the same order."""
    import httpx

    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        return list(await asyncio.gather(*(_probe(client, url) for url in urls)))


async def _probe(client: httpx.AsyncClient, url: str) -> Health:
    import httpx

    try:
        response = await client.get(url.rstrip("/") + "/health")
    except (httpx.HTTPError, OSError):
        return Health.UNREACHABLE
    if response.status_code == 200:
        return Health.OK
    return Health.BUSY if response.status_code == 503 else Health.UNHEALTHY
