"""Schedules of ``source: cron`` rules: five-field cron expressions and ``@every`` intervals.

``parse_schedule("0 9 * * 1-5", tz="Europe/Paris")`` gives a ``Schedule``; its ``after(t)``
is the first tick strictly after the unix time ``t``, and ``between(a, b)`` the ticks in
``(a, b]``. Pure: no clock is read here (the caller passes the times), so a fake clock
tests every case.

- **Cron**: minute, hour, day of month, month, day of week; each ``*``, a number, a range
  ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those. Months and days may be
  named (``jan``, ``mon``); day of week 0 and 7 are both Sunday. When both the day of month
  and the day of week are restricted, a day matching either one ticks (as in Vixie cron).
  Macros: ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly``, ``@yearly``
  (``@annually``).
- **Time zone**: the expression is read in ``tz`` (an IANA name), else in ``local`` (the
  server's zone, which the caller finds), else UTC. A wall-clock time that a daylight-saving
  change skips does not tick that day; one it repeats ticks once (its first occurrence).
- **``@every <duration>``** (``@every 10m``, at least one second): the unix times that are
  whole multiples of the interval, whatever the zone, so every node and every restart
  agrees on when the ticks fall.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mecha.duration import parse_duration

_MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: (name, lowest, highest, names) of the five fields, in order
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
#: how far ahead a cron expression is searched for its next tick (covers 29 February)
_HORIZON_YEARS = 9
HINT = 'write five fields like "0 9 * * 1-5" (minute hour day month weekday), or "@every 10m"'


class ScheduleError(ValueError):
    """A schedule that cannot be read; the message says what and where."""


@dataclass(frozen=True)
class Schedule:
    """When a rule ticks: a cron expression in a zone, or a fixed interval."""

    text: str
    zone: tzinfo
    every: float = 0.0
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # 0 = Sunday
    any_day: bool = True  # day of month is "*"
    any_weekday: bool = True  # day of week is "*"

    def after(self, at: float) -> float:
        """The first tick strictly after the unix time ``at``."""
        if self.every:
            return (int(at // self.every) + 1) * self.every
        found = self._next_cron(at)
        if found is None:  # parse_schedule refuses expressions that never tick
            raise ScheduleError(f'"{self.text}" has no tick in {_HORIZON_YEARS} years')
        return found

    def before(self, at: float) -> float | None:
        """The last tick at or before the unix time ``at`` (None: none in nine years)."""
        if self.every:
            return (at // self.every) * self.every
        return next((t for t in self._ticks(at, forward=False) if t <= at), None)

    def between(self, start: float, end: float, limit: int = 1000) -> list[float]:
        """The ticks in ``(start, end]``, oldest first, at most ``limit`` of them."""
        ticks: list[float] = []
        at = start
        while len(ticks) < limit:
            at = self.after(at)
            if at > end:
                break
            ticks.append(at)
        return ticks

    def _day_matches(self, day: datetime) -> bool:
        weekday = (day.weekday() + 1) % 7  # Python: Monday = 0; cron: Sunday = 0
        in_days, in_weekdays = day.day in self.days, weekday in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def _next_cron(self, at: float) -> float | None:
        return next((t for t in self._ticks(at, forward=True) if t > at), None)

    def _ticks(self, at: float, *, forward: bool) -> Iterator[float]:
        """The cron ticks from the day of ``at`` on (or back), up to nine years, in order."""
        start = datetime.fromtimestamp(at, self.zone)
        day = start.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        step = timedelta(days=1 if forward else -1)
        hours, minutes = (
            sorted(self.hours, reverse=not forward),
            sorted(self.minutes, reverse=not forward),
        )
        for _ in range(366 * _HORIZON_YEARS + 1):
            if day.month in self.months and self._day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        found = self._real_time(day.replace(hour=hour, minute=minute))
                        if found is not None:
                            yield found
            day += step

    def _real_time(self, wall: datetime) -> float | None:
        """The unix time of a wall-clock time in the zone; None if the zone skips it."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        back = first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None)
        if back != wall:  # in a gap: the clock jumped over it
            return None
        return first.timestamp()


def parse_schedule(text: str, tz: str = "", local: tzinfo = UTC) -> Schedule:
    """Read a schedule; ``tz`` is an IANA zone name ("" = ``local``)."""
    zone = _zone(tz) if tz else local
    spec = " ".join(text.split())
    if not spec:
        raise ScheduleError(f"the schedule is empty; {HINT}")
    if spec.lower().startswith("@every"):
        return Schedule(text=spec, zone=zone, every=_interval(spec))
    expanded = _MACROS.get(spec.lower(), spec)
    if expanded.startswith("@"):
        known = ", ".join([*_MACROS, "@every <duration>"])
        raise ScheduleError(f'"{spec}" is not a schedule macro; use one of {known}')
    parts = expanded.split(" ")
    if len(parts) != 5:
        raise ScheduleError(f'"{spec}" has {len(parts)} fields, not 5; {HINT}')
    sets = [_field(part, *field) for part, field in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(day % 7 for day in sets[4])
    schedule = Schedule(
        text=spec, zone=zone, minutes=sets[0], hours=sets[1], days=sets[2], months=sets[3],
        weekdays=weekdays, any_day=parts[2] == "*", any_weekday=parts[4] == "*",
    )  # fmt: skip
    if schedule._next_cron(0.0) is None:  # nine years from 1970 hold every calendar day
        raise ScheduleError(f'"{spec}" never ticks (no such day); check the day and month')
    return schedule


def _zone(tz: str) -> tzinfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f'"{tz}" is not a known time zone; write an IANA name like Europe/Paris or UTC'
        ) from None


def _interval(spec: str) -> float:
    rest = spec[len("@every") :].strip()
    try:
        seconds = parse_duration(rest) if rest else 0.0
    except ValueError:
        seconds = 0.0
    if seconds < 1:
        raise ScheduleError(f'"{spec}" needs a duration of at least 1s after @every, e.g. 10m')
    return seconds


def _field(part: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        values.update(_item(item, name, low, high, names))
    return frozenset(values)


def _item(item: str, name: str, low: int, high: int, names: dict[str, int]) -> range:
    where = f'the {name} field "{item}"'
    body, _, step_text = item.partition("/")
    step = _number(step_text, where, names={}) if step_text else 1
    if step < 1:
        raise ScheduleError(f"{where} has a step of {step}; a step is 1 or more")
    if body == "*":
        first, last = low, high
    else:
        start, dash, end = body.partition("-")
        first = _number(start, where, names)
        last = _number(end, where, names) if dash else (high if step_text else first)
    for value in (first, last):
        if not low <= value <= high:
            raise ScheduleError(f"{where} is out of range: the {name} is {low}-{high}")
    if first > last:
        raise ScheduleError(f"{where} runs backwards; write the lower bound first")
    return range(first, last + 1, step)


def _number(text: str, where: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ScheduleError(f'{where} has "{text}", which is not a number; {HINT}')
    return int(text)
