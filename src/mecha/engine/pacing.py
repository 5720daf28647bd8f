"""How fast and how often: the per-worker token bucket and the retry backoff (pure).

Both take the time as an argument, so tests drive them with any clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mecha.duration import format_duration
from mecha.waits import sane_wait

#: retry backoff defaults: 30 s * 2^n, at most 30 min
RETRY_BASE = 30.0
RETRY_CAP = 1800.0


def retry_delay(
    attempts: int,
    *,
    base: float = RETRY_BASE,
    cap: float = RETRY_CAP,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait after the ``attempts``-th failed send (1 → base, 2 → 2 * base, …).

    A server's own wait (``Retry-After``, a rate-limit reset) wins when it asks for longer,
    but no wait is ever more than ``cap``: a worker or forge asking for an hour, or for
    ever, is tried again after ``cap`` (and the try counts, so asking for ever ends in a
    dead letter). A non-finite or negative ask is ignored.
    """
    exponent = max(0, attempts - 1)
    delay = cap if exponent >= 64 else min(cap, base * (2**exponent))
    asked = sane_wait(retry_after)
    if asked is not None and asked > delay:
        return min(asked, cap)
    return delay


def over_cap(retry_after: float | None, cap: float = RETRY_CAP) -> str:
    """`` (asked to wait N s; at most CAP)`` when a server asked for more than ``cap``; else ""."""
    asked = sane_wait(retry_after)
    if asked is None or asked <= cap:
        return ""
    return f" (asked to wait {math.ceil(asked)} s; at most {format_duration(cap)})"


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; rate 0 means no limit."""

    rate: float
    burst: int
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> float:
        """Take a token if there is one and return 0.0, else return seconds until one."""
        if self.rate <= 0:
            return 0.0
        if self.tokens < 0:  # first use: a full bucket
            self.tokens, self.stamp = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def reshape(self, rate: float, burst: int) -> None:
        """Take new settings (after the worker file changed), keeping what is saved up."""
        self.rate, self.burst = rate, burst
        if self.tokens > burst:
            self.tokens = float(burst)
