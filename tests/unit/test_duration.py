"""Go-style durations."""

from __future__ import annotations

import pytest

from mecha.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("10m0s", 600),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("500ms", 0.5),
        ("0", 0),
        ("2h", 7200),
        ("90s", 90),
        ("-5s", -5),
    ],
)
def test_parse_reads_go_durations(text: str, seconds: float) -> None:
    """Every form Go's time.ParseDuration writes is read."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10", "ten minutes", "5x", "", "m"])
def test_parse_refuses_what_is_not_a_duration(text: str) -> None:
    """A number without a unit, or words, are refused with an example."""
    with pytest.raises(ValueError, match=r"e\.g\. 30s, 10m"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(600, "10m"), (5400, "1h30m"), (0.25, "250ms"), (0, "0s"), (61, "1m1s")]
)
def test_format_writes_the_shortest_form(seconds: float, text: str) -> None:
    """Seconds come back in the form a person would write."""
    assert format_duration(seconds) == text
