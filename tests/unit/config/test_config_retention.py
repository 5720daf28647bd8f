"""config.yml ``retention:`` and ``max_result``: defaults, every form, located mistakes."""

from __future__ import annotations

import pytest

from mecha.config.retention import DAY, Retention
from mecha.config.server_file import ConfigFileError, ServerConfig, parse_config

MINUTE = 60.0


def parse(text: str) -> ServerConfig:
    return parse_config(text, file="config.yml", environ={})


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as caught:
        parse(text)
    return [str(problem) for problem in caught.value.problems]


def test_by_default_everything_is_kept_30_days_and_results_are_capped_at_1_mb() -> None:
    config = parse("")
    assert config.retention == Retention(
        events=30 * DAY, tasks=30 * DAY, timeline=30 * DAY, writes=30 * DAY, interval=10 * MINUTE
    )
    assert config.max_result == 1_000_000
    assert parse("retention:\n").retention == config.retention


def test_each_kind_takes_days_a_duration_or_off() -> None:
    retention = parse(
        "retention:\n  events: 90\n  tasks: 1.5d\n  timeline: 12h\n  writes: off\n  interval: 30s\n"
    ).retention
    assert (retention.events, retention.tasks, retention.timeline) == (
        90 * DAY, 1.5 * DAY, 12 * 3600.0
    )  # fmt: skip
    assert retention.writes is None and retention.interval == 30.0
    assert retention.cutoffs(1_000_000.0) == {
        "events": 1_000_000.0 - 90 * DAY, "tasks": 1_000_000.0 - 1.5 * DAY,
        "timeline": 1_000_000.0 - 12 * 3600.0,
    }  # fmt: skip


def test_zero_keeps_for_ever_like_off() -> None:
    assert parse("retention:\n  events: 0\n").retention.events is None


def test_one_value_sets_every_kind_and_off_keeps_everything() -> None:
    assert parse("retention: 7\n").retention == Retention(
        events=7 * DAY, tasks=7 * DAY, timeline=7 * DAY, writes=7 * DAY
    )
    off = parse("retention: off\n").retention
    assert not off.active and off.cutoffs(0.0) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("retention:\n  events: -3\n",
         'config.yml:2:11: retention.events is -3; it must be 0 or more, and finite\n'
         "    hint: write a number of days (30), a duration (12h, 30d), or off to keep them "
         "for ever"),
        ("retention:\n  tasks: a month\n", 'retention.tasks is "a month", not a number of days'),
        ("retention:\n  timeline: true\n",
         "retention.timeline is true; it must be a number of days, a duration or off"),
        ("retention:\n  writes:\n", "config.yml:2:10: retention.writes is empty"),
        ("retention:\n  events: .inf\n", "retention.events is .inf; it must be 0 or more"),
        ("retention:\n  evnts: 3\n", 'config.yml:2:3: unknown key "evnts"\n'
         '    hint: did you mean "events"?'),
        ("retention:\n  interval: 0\n",
         "config.yml:2:13: retention.interval is 0; it must be a duration of at least 1s\n"
         "    hint: e.g. interval: 10m (how often serve prunes)"),
        ("retention: [7]\n", "config.yml:1:12: retention is a list; it must be off, a number "
         "of days, or a mapping of events, tasks, timeline, writes and interval"),
        ("max_result: 5KB\n", "config.yml:1:13: max_result is '5KB'; it must be a size of at "
         "least 10KB\n    hint: e.g. max_result: 1MB"),
        ("max_result: lots\n", "max_result is 'lots'; it must be a size"),
    ],
)  # fmt: skip
def test_a_bad_value_says_what_where_and_what_to_do(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in problem for problem in found), found


def test_every_mistake_is_reported_at_once() -> None:
    found = problems("retention:\n  events: -1\n  tasks: x\n  interval: never\n")
    assert len(found) == 3


def test_max_result_takes_a_size() -> None:
    assert parse("max_result: 2MB\n").max_result == 2_000_000
    assert parse("max_result: 64KiB\n").max_result == 65_536
