"""``budget:`` in a worker file: the keys as written, and each mistake at file:line:col."""

from __future__ import annotations

import pytest

from mecha.budget import Budget
from mecha.worker.parser import parse_worker
from mecha.yaml_doc import load_yaml
from tests.unit.worker.test_worker import MANAGED, only


def budget(text: str) -> Budget | None:
    spec = parse_worker(load_yaml(MANAGED + text, file="w.yml"), environ={}).spec
    return spec.budget.value() if spec.budget is not None else None


def test_the_keys_as_written() -> None:
    assert budget("") is None
    found = budget(
        "budget:\n  tokens_per_day: 200000\n  tasks_per_hour: 30\n  per_task: 8000\n"
        "  budget_wait: 1h30m\n"
    )
    assert found == Budget(tokens_per_day=200_000, tasks_per_hour=30, per_task=8000,
                           budget_wait=5400.0)  # fmt: skip
    # unwritten knobs stay unset (config.yml's, else the defaults, apply); 0 waits not at all
    assert budget("budget:\n  tasks_per_hour: 5\n  budget_wait: 0\n") == Budget(
        tasks_per_hour=5, budget_wait=0.0
    )


@pytest.mark.parametrize("text,where,words", [
    ("budget:\n  tokens_per_day: -5\n", "w.yml:5:19: budget.tokens_per_day", "must be 0 or more"),
    ("budget:\n  tasks_per_hour: '30'\n", "w.yml:5:19: budget.tasks_per_hour",
     "must be a whole number"),
    ("budget:\n  tokens_per_day: 1.5\n", "w.yml:5:19: budget.tokens_per_day",
     "must be a whole number"),
    ("budget:\n  tasks_per_hour: true\n", "w.yml:5:19: budget.tasks_per_hour",
     "must be a whole number"),
    ("budget:\n  per_task: 0\n", "w.yml:5:13: budget.per_task", "must be 1 or more"),
    ("budget:\n  budget_wait: -1h\n", "w.yml:5:16: budget.budget_wait", '"-1h" is negative'),
    ("budget:\n  budget_wait: soon\n", "w.yml:5:16: budget.budget_wait", "is not a duration"),
    ("budget:\n  tokens_per_dya: 5\n", "w.yml:5:3:", 'unknown key "tokens_per_dya" in budget'),
    ("budget: 5\n", "w.yml:4:9: budget", "must be a mapping"),
])  # fmt: skip
def test_each_mistake_is_located(text: str, where: str, words: str) -> None:
    found = only(MANAGED + text)
    assert found.startswith(where) and words in found, found
