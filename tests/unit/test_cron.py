"""Schedules: cron fields, macros, @every, zones and daylight-saving changes (no clock read)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from mecha.cron import ScheduleError, parse_schedule

PARIS = ZoneInfo("Europe/Paris")


def at(text: str, zone: ZoneInfo | None = None) -> float:
    """A unix time from an ISO text in the zone (UTC when none)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone or UTC).timestamp()


def iso(ts: float, zone: ZoneInfo | None = None) -> str:
    return datetime.fromtimestamp(ts, zone or UTC).strftime("%Y-%m-%d %H:%M %a")


def test_weekdays_at_nine_skip_the_weekend() -> None:
    schedule = parse_schedule("0 9 * * 1-5")
    friday = at("2026-12-04 09:00")  # a Friday
    ticks = schedule.between(friday - 1, friday + 4 * 86400)
    assert [iso(t) for t in ticks] == [
        "2026-12-04 09:00 Fri", "2026-12-07 09:00 Mon", "2026-12-08 09:00 Tue",
    ]  # fmt: skip


def test_the_first_tick_is_strictly_after_the_time_given() -> None:
    schedule = parse_schedule("*/15 * * * *")
    assert iso(schedule.after(at("2026-12-07 10:15"))) == "2026-12-07 10:30 Mon"
    assert iso(schedule.after(at("2026-12-07 10:14:59"))) == "2026-12-07 10:15 Mon"


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("@hourly", "2026-12-07 10:30", "2026-12-07 11:00 Mon"),
        ("@daily", "2026-12-07 10:30", "2026-12-08 00:00 Tue"),
        ("@weekly", "2026-12-07 10:30", "2026-12-13 00:00 Sun"),
        ("@monthly", "2026-12-07 10:30", "2027-01-01 00:00 Fri"),
        ("@yearly", "2026-12-07 10:30", "2027-01-01 00:00 Fri"),
        ("30 4 1,15 * *", "2026-12-07 10:30", "2026-12-15 04:30 Tue"),
        ("0 0 29 feb *", "2026-12-07 10:30", "2028-02-29 00:00 Tue"),
        ("0 12 * jan-mar/2 sun", "2026-12-07 10:30", "2027-01-03 12:00 Sun"),
        ("0 0 * * 7", "2026-12-07 10:30", "2026-12-13 00:00 Sun"),  # 7 is Sunday too
        ("5-10/5 8 * * *", "2026-12-07 08:05", "2026-12-07 08:10 Mon"),
    ],
)
def test_fields_macros_and_names(text: str, start: str, expected: str) -> None:
    assert iso(parse_schedule(text).after(at(start))) == expected


def test_day_of_month_or_day_of_week_when_both_are_given() -> None:
    # the 13th, or any Friday (Vixie cron's rule)
    schedule = parse_schedule("0 0 13 * fri")
    ticks = schedule.between(at("2026-12-01 00:00"), at("2026-12-14 00:00"))
    assert [iso(t) for t in ticks] == [
        "2026-12-04 00:00 Fri", "2026-12-11 00:00 Fri", "2026-12-13 00:00 Sun",
    ]  # fmt: skip


def test_a_zone_shifts_the_wall_clock() -> None:
    schedule = parse_schedule("0 9 * * *", tz="Europe/Paris")
    tick = schedule.after(at("2026-12-07 00:00"))
    assert iso(tick) == "2026-12-07 08:00 Mon"  # 09:00 in Paris, winter: UTC+1
    assert iso(tick, PARIS) == "2026-12-07 09:00 Mon"
    local = parse_schedule("0 9 * * *", local=PARIS)  # the server's zone, no tz:
    assert local.after(at("2026-12-07 00:00")) == tick


def test_a_time_the_clock_skips_does_not_tick_and_a_repeated_one_ticks_once() -> None:
    spring = parse_schedule("30 2 * * *", tz="Europe/Paris")  # 02:30 does not exist 29 March
    ticks = spring.between(at("2026-03-28 00:00", PARIS), at("2026-03-31 00:00", PARIS))
    assert [iso(t, PARIS) for t in ticks] == ["2026-03-28 02:30 Sat", "2026-03-30 02:30 Mon"]
    autumn = parse_schedule("30 2 * * *", tz="Europe/Paris")  # 02:30 twice on 25 October
    ticks = autumn.between(at("2026-10-25 00:00", PARIS), at("2026-10-25 12:00", PARIS))
    assert len(ticks) == 1


def test_the_last_tick_at_or_before_a_time() -> None:
    weekdays = parse_schedule("0 9 * * 1-5")
    assert iso(weekdays.before(at("2026-12-07 08:59")) or 0) == "2026-12-04 09:00 Fri"
    assert iso(weekdays.before(at("2026-12-07 09:00")) or 0) == "2026-12-07 09:00 Mon"
    assert parse_schedule("@every 10m").before(1_000_199) == 999_600
    assert parse_schedule("@every 10m").before(1_000_200) == 1_000_200


def test_every_falls_on_whole_multiples_of_unix_time() -> None:
    schedule = parse_schedule("@every 10m")
    assert schedule.after(1_000_000) == 1_000_200  # 1,000,200 = 1,667 x 600
    assert schedule.after(1_000_200) == 1_000_800
    assert schedule.between(0, 1800) == [600, 1200, 1800]


@pytest.mark.parametrize(
    ("text", "tz", "says"),
    [
        ("", "", "empty"),
        ("0 9 * *", "", "4 fields, not 5"),
        ("61 * * * *", "", 'minute field "61" is out of range: the minute is 0-59'),
        ("0 9 * * mon-sun2", "", "not a number"),
        ("0 9 * * 5-1", "", "runs backwards"),
        ("*/0 * * * *", "", "a step of 0"),
        ("0 0 31 feb *", "", "never ticks"),
        ("@sometimes", "", "not a schedule macro"),
        ("@every", "", "at least 1s"),
        ("@every soon", "", "at least 1s"),
        ("0 9 * * *", "Mars/Olympus", "not a known time zone"),
    ],
)
def test_a_bad_schedule_says_what_is_wrong(text: str, tz: str, says: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text, tz=tz)
    assert says in str(caught.value)
