"""GitHub's limits as the write-back client meets them: ``short``, ``failure``.

* A comment or review body is cut to GitHub's 65 536 characters by
  ``mecha.forges.bodies.fitted_body``. A status description holds 140 (``short``).
* ``failure`` tells a write that may work later from one that will not: no answer, 5xx and
  429 are transient; so is a 403 that is a rate limit (``Retry-After``, an exhausted
  ``X-RateLimit-Remaining`` until ``X-RateLimit-Reset``, or GitHub's "secondary rate limit"
  message). Any other 4xx fails for good with GitHub's message. No message keeps a secret.
"""

from __future__ import annotations

import time
from typing import Any

from mecha import waits
from mecha.forges.fetch import FetchError, scrub
from mecha.forges.writer import WriteFailure

#: GitHub's limit on a status description, in characters
MAX_DESCRIPTION = 140
#: GitHub asks to wait at least a minute after a secondary rate limit that names no time
SECONDARY_WAIT = 60.0


def short(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with "…" when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure(exc: FetchError, secrets: list[str], *, now: float | None = None) -> WriteFailure:
    """The WriteFailure for a failed request: transient or not, and when to try again."""
    message = scrub(str(exc), secrets)
    status = exc.status
    if not status:
        return WriteFailure(message, transient=True)
    wait = retry_after(exc.headers, time.time() if now is None else now)
    exhausted = exc.headers.get("x-ratelimit-remaining") == "0"
    secondary = "secondary rate limit" in message.lower()
    if status == 403 and secondary and wait is None:
        wait = SECONDARY_WAIT
    limited = status == 403 and (wait is not None or exhausted or secondary)
    if status >= 500 or status == 429 or limited:
        return WriteFailure(message, transient=True, retry_after=wait, status=status)
    return WriteFailure(message, transient=False, status=status)


def retry_after(headers: Any, now: float) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or a date), else until ``X-RateLimit-Reset``
    when ``X-RateLimit-Remaining`` is 0; None when the answer says neither (or nonsense).
    The write-back caps it at its ``retry_cap``."""
    said = waits.retry_after(str(headers.get("retry-after", "")), now)
    if said is not None:
        return said
    if headers.get("x-ratelimit-remaining") == "0":
        return waits.reset_wait(str(headers.get("x-ratelimit-reset", "")), now)
    return None
