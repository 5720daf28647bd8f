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
from mecha.duration import duration_value
from mecha.errors import Problem
from mecha.numbers import whole
from mecha.yaml_doc import Document, suggest_key

KEY = "budget"
BUDGET_KEYS = ("tokens_per_day", "tasks_per_hour", "per_task", "budget_wait")
_EXAMPLE = "e.g. budget: {tokens_per_day: 1000000, tasks_per_hour: 200}"


def check_budget(doc: Document, data: Mapping[str, Any]) -> tuple[Budget | None, list[Problem]]:
    """config.yml's ``budget:`` (None when absent or empty), and what is wrong with it."""
    value = data.get(KEY)
    if value is None:
        return None, []
    if not isinstance(value, dict):
        return None, [Problem(doc.where((KEY,)), "budget must be a mapping", _EXAMPLE)]
    problems = [
        Problem(doc.where((KEY, key), key=True), f'unknown key "{key}" in budget',
                suggest_key(str(key), BUDGET_KEYS))
        for key in value
        if key not in BUDGET_KEYS
    ]  # fmt: skip
    found: dict[str, Any] = {}
    for key in BUDGET_KEYS:
        if key not in value:
            continue
        checked, message, hint = _check(key, value[key])
        if message:
            problems.append(Problem(doc.where((KEY, key)), message, hint))
        else:
            found[key] = checked
    if problems:
        return None, problems
    return Budget(**found), problems


def _check(key: str, item: Any) -> tuple[Any, str, str]:
    """(the value as Budget takes it, "", "") or (None, what is wrong, what to do)."""
    if key == "budget_wait":
        seconds = duration_value(item)
        if seconds is None or seconds < 0:
            return (
                None,
                (f"budget.budget_wait is {_shown(item)}; it must be a duration of 0 or more"),
                "e.g. budget_wait: 6h (0: a task over budget fails at once)",
            )
        return seconds, "", ""
    least, item = (1 if key == "per_task" else 0), whole(item)  # 200.0 is 200
    if isinstance(item, bool) or not isinstance(item, int) or item < least:
        return (
            None,
            (f"budget.{key} is {_shown(item)}; it must be a whole number of {least} or more"),
            f"e.g. {key}: {_SAMPLES[key]}",
        )
    return item, "", ""


_SAMPLES = {"tokens_per_day": 1_000_000, "tasks_per_hour": 200, "per_task": 50_000}


def _shown(value: Any) -> str:
    """A value as YAML wrote it: true, 12, "text"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)
