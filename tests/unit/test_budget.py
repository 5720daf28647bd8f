"""The budget rules, pure: usage in a result's metadata, refusals, when a window frees."""

from __future__ import annotations

from mecha.budget import (
    DAY,
    HOUR,
    TASKS,
    TOKENS,
    BudgetLimit,
    BudgetUse,
    Spent,
    Totals,
    frees_at,
    refusal,
    usage_of,
    use_lines,
)


def test_usage_in_each_shape_workers_report_it() -> None:
    # Mecha's adapters and worker images
    assert usage_of({"input_tokens": 300, "output_tokens": 45, "exit_code": 0}) == 345
    # OpenAI's usage object: its total when given, else the parts
    assert usage_of({"usage": {"prompt_tokens": 10, "completion_tokens": 5,
                               "total_tokens": 16}}) == 16  # fmt: skip
    assert usage_of({"usage": {"prompt_tokens": 10, "completion_tokens": 5}}) == 15
    assert usage_of({"prompt_tokens": 7, "completion_tokens": 3}) == 10
    # Anthropic's, cache tokens included (as the claude worker image counts them)
    assert usage_of({"usage": {"input_tokens": 10, "output_tokens": 5,
                               "cache_creation_input_tokens": 100,
                               "cache_read_input_tokens": 1000}}) == 1115  # fmt: skip
    # Ollama's counts
    assert usage_of({"prompt_eval_count": 26, "eval_count": 298}) == 324


def test_no_usage_is_none() -> None:
    assert usage_of({}) is None
    assert usage_of({"model": "x", "exit_code": 0}) is None
    # our adapters write zeros when the API gave no usage: not a reported use
    assert usage_of({"input_tokens": 0, "output_tokens": 0}) is None
    # not counts: text, booleans, negatives
    assert usage_of({"input_tokens": "12", "output_tokens": True, "eval_count": -3}) is None
    assert usage_of({"usage": "lots"}) is None


def test_refusals() -> None:
    tokens = BudgetLimit(scope="w", tokens_per_day=1000)
    assert refusal(tokens, Totals(tokens=900), 100) == ""
    assert refusal(tokens, Totals(tokens=900, in_flight=1), 101) == TOKENS
    # nothing in flight and something left: one task goes whatever its estimate
    assert refusal(tokens, Totals(tokens=900), 5000) == ""
    assert refusal(tokens, Totals(tokens=1000), 1) == TOKENS
    tasks = BudgetLimit(scope="w", tasks_per_hour=2)
    assert refusal(tasks, Totals(tasks=1), 10**9) == ""
    assert refusal(tasks, Totals(tasks=2), 0) == TASKS
    assert refusal(BudgetLimit(scope="w"), Totals(tokens=10**9, tasks=10**9), 10**9) == ""


def test_when_a_window_frees() -> None:
    rows = [Spent(100.0, 400), Spent(200.0, 400), Spent(300.0, 400, live=True)]
    # tasks: the oldest of the ones over the limit leaves the hour
    assert frees_at(TASKS, 3, rows, tokens=0) == 100.0 + HOUR
    assert frees_at(TASKS, 2, rows, tokens=0) == 200.0 + HOUR
    assert frees_at(TASKS, 1, rows, tokens=0) == 300.0 + HOUR
    # tokens: once 300 more fit in 1000, at the second row's leaving (400 left + 300)
    assert frees_at(TOKENS, 1000, rows, tokens=300) == 200.0 + DAY
    # an estimate over the limit: once nothing is in flight and something is left
    assert frees_at(TOKENS, 1000, rows, tokens=5000) == 300.0 + DAY
    assert frees_at(TOKENS, 1000, [], tokens=5000) == 0.0


def test_use_lines_show_each_window() -> None:
    use = BudgetUse(scope="w", tokens_used=700, tokens_reserved=200, tasks_used=3,
                    tasks_reserved=1, in_flight=1, tokens_waiting=2, day_oldest=50.0,
                    hour_oldest=4000.0)  # fmt: skip
    limits = {"w": BudgetLimit(scope="w", tokens_per_day=1000)}
    tokens, tasks = use_lines(limits, [use], now=5000.0)
    assert tokens == {
        "worker": "w", "window": TOKENS, "window_start": 5000.0 - DAY, "window_end": 5000.0,
        "used": 700, "reserved": 200, "limit": 1000, "left": 100, "in_flight": 1,
        "waiting": 2, "next_frees_at": 50.0 + DAY,
    }  # fmt: skip
    assert (tasks["limit"], tasks["left"], tasks["used"], tasks["next_frees_at"]) == (
        None, None, 3, 4000.0 + HOUR
    )  # fmt: skip
    assert tasks["waiting"] == 0
