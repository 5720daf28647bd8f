"""What the dispatcher counts per worker since the start (pure): task outcomes and the
dispatch latency's count and sum, for /metrics' worker-labelled series (their buckets
are only in the unlabelled histogram, so none are kept here)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Latency:
    """How many dispatch latencies a worker had, and their sum (milliseconds)."""

    count: int = 0
    total: float = 0.0


@dataclass
class WorkerFigures:
    """Counts by worker and outcome (``sent``, ``completed``, ``failed``, ...) and each
    worker's latency count and sum (milliseconds). A worker's entry is made at its first figure
    and never dropped, so both dicts list workers in the order they were first seen."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)

    def count(self, worker: str, outcome: str, times: int = 1) -> None:
        """Add ``times`` to ``worker``'s ``outcome``."""
        found = self.counts.get(worker)
        if found is None:
            found = self.counts[worker] = Counter()
        found[outcome] += times

    def observe(self, worker: str, ms: float) -> None:
        """Count one dispatch latency of ``worker``."""
        found = self.latency.get(worker)
        if found is None:
            found = self.latency[worker] = Latency()
        found.count += 1
        found.total += ms
