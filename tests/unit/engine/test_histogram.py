"""The Prometheus-shaped histogram."""

from __future__ import annotations

from mecha.engine.histogram import Histogram


def test_values_fall_in_cumulative_buckets() -> None:
    histogram = Histogram(bounds=(1, 5, 10))
    for value in (0.5, 1, 3, 10, 11, 500):
        histogram.observe(value)
    assert histogram.cumulative() == [("1", 2), ("5", 3), ("10", 4), ("+Inf", 6)]
    assert histogram.count == 6
    assert histogram.total == 525.5


def test_an_empty_histogram_counts_nothing() -> None:
    assert Histogram(bounds=(1,)).cumulative() == [("1", 0), ("+Inf", 0)]
