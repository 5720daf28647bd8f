"""What the dispatcher counts per worker since the start (pure): task outcomes and the
dispatch latency histogram, for /metrics' worker-labelled series."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mecha.engine.histogram import Histogram


@dataclass
class WorkerFigures:
    """Counts by worker and outcome (``sent``, ``completed``, ``failed``, ...) and each
    worker's latency histogram (milliseconds). A worker's entry is made at its first figure
    and never dropped, so both dicts list workers in the order they were first seen."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    latency: dict[str, Histogram] = field(default_factory=dict)

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
            found = self.latency[worker] = Histogram()
        found.observe(ms)
