"""Waits a server asks for: ``Retry-After`` and rate-limit resets, read safely (pure).

Workers, model APIs and forges say how long to wait in headers. What they say is read
into finite, non-negative seconds or None: delta-seconds (ASCII digits only), an HTTP-date
(one in the past asks for 0), or an epoch second a rate limit resets at. Anything else
(``inf``, ``nan``, ``1e300``, ``-5``, a number too big for a float, a garbled date) is
None, as if the server had said nothing. How long to really wait, never past the retry
cap, is decided by :func:`mecha.engine.pacing.retry_delay`.
"""

from __future__ import annotations

import datetime
import email.utils
import math

#: longest wait read from a header (some 30 million years); longer asks read as this
LONGEST = 1e15


def sane_wait(seconds: float | None) -> float | None:
    """``seconds`` if finite and not negative (at most LONGEST), else None."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, LONGEST)


def retry_after(value: str, now: float) -> float | None:
    """Seconds a ``Retry-After`` value asks for: delta-seconds or an HTTP-date; None if garbage."""
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return _seconds(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 9110 dates are GMT anyway
        when = when.replace(tzinfo=datetime.UTC)
    try:
        stamp = when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
    return sane_wait(max(0.0, stamp - now))


def reset_wait(value: str, now: float) -> float | None:
    """Seconds until epoch second ``value`` (a rate limit's reset): 0 if past, None if garbage."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    stamp = _seconds(text)
    return None if stamp is None else sane_wait(max(0.0, stamp - now))


def _seconds(digits: str) -> float | None:
    if len(digits) > 16:  # past LONGEST; float() would round or, far enough, overflow
        return LONGEST
    return sane_wait(float(digits))
