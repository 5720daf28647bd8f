"""config.yml's ``budget:``: what all workers together may use (pure; ``mecha.budget``).

::

    budget:
      tokens_per_day: 1000000   # every worker's tokens over the last 24 hours
      tasks_per_hour: 200       # every worker's sends over the last hour
      per_task: 50000           # reservation for workers without an estimate or their own
      budget_wait: 24h          # how long a task over budget waits (workers without their own)

Each mistake is a Problem at file:line:column, like the rest of config.yml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mecha.budget import Budget
from mecha.duration import parse_duration
from mecha.errors import Problem
from mecha.yaml_doc import Document, suggest_key

KEY = "budget"
BUDGET_KEYS = ("tokens_per_day", "tasks_per_hour", "per_task", "budget_wait")
_EXAMPLE = "e.g. budget: {tokens_per_day: 1000000, tasks_per_hour: 200}"


def check_budget(doc: Document, data: Mapping[str, Any]) -> tuple[Budget | None, list[Problem]]:
    """config.yml's ``budget:`` (None when absent or empty), and what is wrong with it."""
    problems: list[Problem] = []
    value = data.get(KEY)
    if value is None:
        return None, problems

    def add(key: str, message: str, hint: str, *, at_key: bool = False) -> None:
        path = (KEY, key) if key else (KEY,)
        problems.append(Problem(doc.where(path, key=at_key), message, hint))

    if not isinstance(value, dict):
        add("", "budget must be a mapping", _EXAMPLE)
        return None, problems
    for key in value:
        if key not in BUDGET_KEYS:
            add(str(key), f'unknown key "{key}" in budget', suggest_key(str(key), BUDGET_KEYS),
                at_key=True)  # fmt: skip
    found: dict[str, Any] = {}
    for key, least in (("tokens_per_day", 0), ("tasks_per_hour", 0), ("per_task", 1)):
        if key not in value:
            continue
        item = value[key]
        if isinstance(item, bool) or not isinstance(item, int) or item < least:
            add(key, f"budget.{key} is {_shown(item)}; it must be a whole number of {least} or more",
                f"e.g. {key}: {_SAMPLES[key]}")  # fmt: skip
        else:
            found[key] = item
    if "budget_wait" in value:
        seconds = _seconds(value["budget_wait"])
        if seconds is None or seconds < 0:
            add("budget_wait", f"budget.budget_wait is {_shown(value['budget_wait'])}; it must be a "
                "duration of 0 or more", "e.g. budget_wait: 6h (0: a task over budget fails "
                "at once)")  # fmt: skip
        else:
            found["budget_wait"] = seconds
    if problems:
        return None, problems
    return Budget(**found), problems


_SAMPLES = {"tokens_per_day": 1_000_000, "tasks_per_hour": 200, "per_task": 50_000}


def _shown(value: Any) -> str:
    """A value as YAML wrote it: true, 12, "text"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_duration(str(value))
    except ValueError:
        return None
