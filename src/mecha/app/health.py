"""Health probes for the CLI: ``probe_all`` asks many workers at once, on a client made here.

`mecha worker ls` and `mecha worker start` (an unmanaged worker) ask each worker's
``GET /health``; the probe itself is ``mecha.runtimes.endpoint``'s, the HTTP client it
runs on is made and closed here, per call.
"""

from __future__ import annotations

from collections.abc import Sequence

from mecha.runtimes.contract import Health
from mecha.runtimes.endpoint import HEALTH_TIMEOUT, probe_each


async def probe_all(
    urls: Sequence[str], *, timeout: float = HEALTH_TIMEOUT, api_keys: Sequence[str] = ()
) -> list[Health]:
    """Ask every ``url``/health at once; results in the same order.

    ``api_keys``, when given, holds one key per url ("" for none).
    """
    import httpx

    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        return await probe_each(client, urls, timeout=timeout, api_keys=api_keys)
