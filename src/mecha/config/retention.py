"""How long finished work is kept: ``Retention`` (config.yml ``retention:``), pure.

Each of events, tasks, timeline entries and writes is kept for its own time (default 30
days), ``off`` (or 0) keeps it for ever. What is still in use is kept whatever its age:
a task not finished (pending, waiting to retry, running), a write not yet settled
(planned, being tried), an event while any of its tasks is kept; the store's ``prune``
(``mecha.store.pruning.PruneStore``) holds those rules. ``mecha serve`` prunes every
``interval`` in small batches (``engine.retention``); ``mecha prune`` does it by hand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mecha.duration import parse_duration

DAY = 86_400.0
#: what ``retention:`` keeps, each for its own time
RETENTION_KINDS = ("events", "tasks", "timeline", "writes")
DEFAULT_RETENTION_DAYS = 30
#: seconds between two prune passes of a running serve
DEFAULT_PRUNE_INTERVAL = 600.0
KEEP_HINT = "write a number of days (30), a duration (12h, 30d), or off to keep them for ever"
#: a number of days: ``30``, ``1.5d``, ``7 days`` (a sign is read, to refuse it clearly)
_DAYS = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*(?:d|days?)?", re.IGNORECASE)
_DEFAULT = DEFAULT_RETENTION_DAYS * DAY


@dataclass(frozen=True, kw_only=True)
class Retention:
    """Seconds each kind of row is kept after it is finished (None: for ever), and how
    often a running serve prunes."""

    events: float | None = _DEFAULT
    tasks: float | None = _DEFAULT
    timeline: float | None = _DEFAULT
    writes: float | None = _DEFAULT
    interval: float = DEFAULT_PRUNE_INTERVAL

    @property
    def active(self) -> bool:
        """Whether anything is ever pruned."""
        return any(self.kept(kind) is not None for kind in RETENTION_KINDS)

    def kept(self, kind: str) -> float | None:
        """Seconds ``kind`` rows are kept (None: for ever)."""
        value: float | None = getattr(self, kind)
        return value

    def cutoffs(self, now: float) -> dict[str, float]:
        """For each kind that is pruned: rows finished before this unix time may go."""
        return {k: now - keep for k in RETENTION_KINDS if (keep := self.kept(k)) is not None}


def keep_seconds(value: Any) -> tuple[float | None, str]:
    """(seconds to keep or None for ever, "") from ``30`` (days), ``30d``, ``12h`` or
    ``off``; (the default, what is wrong) when ``value`` is none of those."""
    if isinstance(value, str) and value.strip().lower() == "off":
        return None, ""
    shown = f'"{value}"' if isinstance(value, str) else _yaml_text(value)
    if value is None:
        return _DEFAULT, "is empty"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return _DEFAULT, f"is {shown}; it must be a number of days, a duration or off"
    if isinstance(value, str):
        days = _DAYS.fullmatch(value.strip())
        seconds = float(days[1]) * DAY if days else _duration(value)
    else:
        seconds = float(value) * DAY
    if seconds is None:
        return _DEFAULT, f"is {shown}, not a number of days"
    if not 0 <= seconds < float("inf"):
        return _DEFAULT, f"is {shown}; it must be 0 or more, and finite"
    return seconds or None, ""  # 0 keeps for ever, as off does


def _duration(text: str) -> float | None:
    try:
        return parse_duration(text)
    except ValueError:
        return None


def _yaml_text(value: Any) -> str:
    """A YAML value as the user would write it (``true``, ``-3``, ``.inf``, ``[1]``)."""
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    return json.dumps(value, ensure_ascii=False, default=str)
