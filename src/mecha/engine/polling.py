"""A loop that reads the store every so often until its owner stops: ``poll_forever``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mecha.errors import MechaError

log = logging.getLogger(__name__)


async def poll_forever(
    interval: float,
    once: Callable[[], Awaitable[None]],
    *,
    stopping: Callable[[], bool],
    what: str,
) -> None:
    """Every ``interval`` seconds run ``once``; a store error is logged, not fatal."""
    while not stopping():
        await asyncio.sleep(interval)
        try:
            await once()
        except MechaError as exc:
            log.error("%s: reading the store failed: %s", what, exc)
