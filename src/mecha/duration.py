"""Go-style duration strings (``30m``, ``10m0s``, ``1h30m``, ``1.5h``, ``500ms``).

Worker files written for the Go version of Mecha carry these; ``parse_duration`` reads
them into seconds and ``format_duration`` writes seconds back in the shortest form.
"""

from __future__ import annotations

import re
from typing import Any

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError saying what a duration looks like if it is not one."""
    raw = text.strip()
    sign = -1.0 if raw.startswith("-") else 1.0
    body = raw.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _PART.match(body, pos)
        if not match:
            raise ValueError(
                f'"{text}" is not a duration; write a number and a unit, e.g. 30s, 10m, 1h30m'
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError("an empty duration; write a number and a unit, e.g. 30s, 10m, 1h30m")
    return sign * total


def duration_value(value: Any) -> float | None:
    """A YAML value as seconds: a number, or a duration's text (``30s``); None if it is
    neither (a boolean included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_duration(str(value))
    except ValueError:
        return None


def format_duration(seconds: float) -> str:
    """The shortest Go-style form of ``seconds`` (``600`` → ``10m``, ``5400`` → ``1h30m``)."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{int(hours)}h" if hours else "", f"{int(minutes)}m" if minutes else ""]
    parts.append(f"{round(secs, 3):g}s" if secs else "")
    return "".join(parts)
