"""A cumulative histogram in Prometheus' shape (pure): bucket counts, sum, count."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

#: milliseconds: from a task being stored to its send starting
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 60000)


@dataclass
class Histogram:
    """Observations counted into upper-bounded buckets (the last is +Inf)."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS_MS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Count one value (a value equal to a bound falls in that bound's bucket)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count of values at or below it) for each bound and +Inf, as exposed."""
        running = 0
        rows = []
        for bound, counted in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += counted
            rows.append(("+Inf" if bound == float("inf") else f"{bound:g}", running))
        return rows
