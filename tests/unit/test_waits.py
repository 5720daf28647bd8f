"""Reading the waits servers ask for: Retry-After and rate-limit resets (pure)."""

from __future__ import annotations

import math

import pytest

from mecha.forges.fetch import FetchError
from mecha.forges.github.limits import failure
from mecha.runtimes.endpoint import retry_after as worker_retry_after
from mecha.waits import LONGEST, reset_wait, retry_after, sane_wait

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 GMT


def test_delta_seconds() -> None:
    assert retry_after("120", NOW) == 120
    assert retry_after(" 0 ", NOW) == 0
    assert retry_after("99999999999", NOW) == 99999999999


@pytest.mark.parametrize(
    "said", ["", "inf", "nan", "Infinity", "1e300", "-5", "1.5", "²", "٣", "soon", "  "]
)
def test_nonsense_reads_as_unsaid(said: str) -> None:
    assert retry_after(said, NOW) is None


def test_a_number_too_big_for_a_float_is_finite_and_bounded() -> None:
    wait = retry_after("9" * 400, NOW)
    assert wait == LONGEST and math.isfinite(wait)


def test_http_dates_in_the_past_ask_for_nothing_and_far_future_ones_are_bounded() -> None:
    assert retry_after("Tue, 14 Nov 2023 22:15:20 GMT", NOW) == 120
    assert retry_after("Thu, 01 Jan 1970 00:00:00 GMT", NOW) == 0
    far = retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW)
    assert far is not None and NOW < far <= LONGEST
    assert retry_after("Mon, 99 Foo 2023 25:61:61 GMT", NOW) is None


def test_rate_limit_resets() -> None:
    assert reset_wait(str(int(NOW) + 30), NOW) == 30
    assert reset_wait("1", NOW) == 0  # already reset
    assert reset_wait("-1", NOW) is None
    assert reset_wait("1e10", NOW) is None
    huge = reset_wait("9" * 400, NOW)
    assert huge is not None and math.isfinite(huge) and huge <= LONGEST


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, None])
def test_sane_wait_drops_non_finite_and_negative(value: float | None) -> None:
    assert sane_wait(value) is None
    assert sane_wait(1e300) == LONGEST


def test_workers_and_forges_share_the_reading() -> None:
    assert worker_retry_after("inf", now=NOW) is None
    assert worker_retry_after("99999999999", now=NOW) == 99999999999
    limited = FetchError("429 Too Many Requests", status=429, headers={"retry-after": "inf"})
    said = failure(limited, [], now=NOW)
    assert said.transient and said.retry_after is None
    reset = FetchError(
        "403 Forbidden",
        status=403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9" * 400},
    )
    wait = failure(reset, [], now=NOW).retry_after
    assert wait is not None and math.isfinite(wait) and wait <= LONGEST
