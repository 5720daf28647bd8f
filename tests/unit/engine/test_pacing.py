"""The token bucket and the retry backoff, driven by a hand-made clock."""

from __future__ import annotations

import pytest

from mecha.engine.pacing import TokenBucket, over_cap, retry_delay


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    delays = [retry_delay(n, base=30, cap=1800) for n in range(1, 9)]
    assert delays == [30, 60, 120, 240, 480, 960, 1800, 1800]


def test_backoff_defaults_are_30s_and_30min() -> None:
    assert retry_delay(1) == 30
    assert retry_delay(100) == 1800
    assert retry_delay(10_000) == 1800  # no overflow for absurd attempt counts


def test_retry_after_wins_only_when_longer() -> None:
    assert retry_delay(1, base=1, cap=10, retry_after=7) == 7
    assert retry_delay(3, base=1, cap=10, retry_after=2) == 4


def test_no_wait_a_server_asks_for_passes_the_cap() -> None:
    assert retry_delay(1, base=1, cap=10, retry_after=3600) == 10
    assert retry_delay(1, retry_after=99999999999) == 1800
    assert retry_delay(1, base=1, cap=10, retry_after=10) == 10


@pytest.mark.parametrize("nonsense", [float("inf"), float("nan"), -5.0, float("-inf")])
def test_a_non_finite_or_negative_ask_is_ignored(nonsense: float) -> None:
    assert retry_delay(2, base=1, cap=10, retry_after=nonsense) == 2
    assert over_cap(nonsense, 10) == ""


def test_an_absurd_finite_ask_is_capped() -> None:
    assert retry_delay(1, base=1, cap=10, retry_after=1e300) == 10


def test_over_cap_says_what_was_asked_and_the_cap() -> None:
    assert over_cap(99999999999, 1800) == " (asked to wait 99999999999 s; at most 30m)"
    assert over_cap(3600.5, 600) == " (asked to wait 3601 s; at most 10m)"
    assert over_cap(1800, 1800) == ""
    assert over_cap(None, 1800) == ""


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=5)
    assert [bucket.take(100.0) for _ in range(5)] == [0.0] * 5
    wait = bucket.take(100.0)
    assert wait == pytest.approx(0.5)
    assert bucket.take(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5) == 0.0  # one token came back after 0.5 s


def test_bucket_saves_up_no_more_than_the_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    bucket.take(0.0)
    taken = sum(1 for _ in range(10) if bucket.take(1000.0) == 0.0)
    assert taken == 3


def test_rate_zero_means_no_limit() -> None:
    bucket = TokenBucket(rate=0.0, burst=1)
    assert all(bucket.take(0.0) == 0.0 for _ in range(1000))


def test_reshape_keeps_saved_tokens_within_the_new_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=10)
    bucket.take(0.0)
    bucket.reshape(1.0, 2)
    assert [bucket.take(0.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert bucket.take(0.0) > 0
