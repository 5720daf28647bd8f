"""GitHub's limits as the write-back client meets them: ``fitted_body``, ``short``, ``failure``.

* A comment or review body holds at most 65 536 characters: ``fitted_body`` cuts the text
  (never the hidden markers), closes a code block the cut left open, and says so. A status
  description holds 140 (``short``).
* ``failure`` tells a write that may work later from one that will not: no answer, 5xx and
  429 are transient; so is a 403 that is a rate limit (``Retry-After``, an exhausted
  ``X-RateLimit-Remaining`` until ``X-RateLimit-Reset``, or GitHub's "secondary rate limit"
  message). Any other 4xx fails for good with GitHub's message. No message keeps a secret.
"""

from __future__ import annotations

import re
import time
from typing import Any

from mecha import waits
from mecha.forges.fetch import FetchError, scrub
from mecha.forges.writer import WriteFailure
from mecha.policy.writes import Write, marked_body

#: GitHub's limits on a comment (or review) body and on a status description, in characters
MAX_COMMENT = 65536
MAX_DESCRIPTION = 140
#: GitHub asks to wait at least a minute after a secondary rate limit that names no time
SECONDARY_WAIT = 60.0
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def fitted_body(write: Write, text: str, *, limit: int = MAX_COMMENT) -> str:
    """``text`` with the write's markers, cut with a note when it is longer than ``limit``."""
    body = marked_body(write, text)
    if len(body) <= limit:
        return body
    note = f"\n\n… (cut: the text has {len(text):,} characters, more than GitHub takes)"
    room = limit - (len(marked_body(write, "x" + note)) - 1)
    kept = _closed(text[: max(0, room)])
    if len(kept) > room:
        kept = _closed(text[: max(0, room - (len(kept) - room))])
    body = marked_body(write, kept + note)
    if len(body) > limit:  # a fence opened only by the second cut: cut without closing it
        body = marked_body(write, text[: max(0, room)] + note)
    return body


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


def _closed(text: str) -> str:
    """``text``, with a fenced code block it leaves open closed."""
    fence = ""
    for line in text.split("\n"):
        found = _FENCE.match(line)
        if not found:
            continue
        mark = found[1]
        if not fence:
            fence = mark
        elif set(line.strip()) == {fence[0]} and len(line.strip()) >= len(fence):
            fence = ""
    return f"{text}\n{fence}" if fence else text
