"""Claude Code: ``claude -p --output-format json [options] -- <prompt>``.

It prints one JSON object when it ends::

    {"type": "result", "subtype": "success", "is_error": false, "result": "text",
     "duration_ms": 1234, "num_turns": 1, "session_id": "...", "total_cost_usd": 0.01,
     "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 0, "output_tokens": 5},
     "modelUsage": {"claude-sonnet-4-5": {"inputTokens": 10, "outputTokens": 5}}}

``is_error`` decides failure (``subtype`` can say "success" on an API error). Input
tokens count the cached ones too (``input_tokens`` + cache creation + cache reads).

Options from the environment: ``CLAUDE_MODEL`` (--model), ``CLAUDE_EFFORT`` (--effort),
``CLAUDE_MAX_TURNS`` (--max-turns), ``CLAUDE_MAX_BUDGET_USD`` (--max-budget-usd),
``CLAUDE_ALLOWED_TOOLS`` / ``CLAUDE_DISALLOWED_TOOLS`` (comma lists → --allowedTools /
--disallowedTools), ``CLAUDE_SYSTEM_PROMPT`` (--system-prompt),
``CLAUDE_APPEND_SYSTEM_PROMPT`` (--append-system-prompt), ``CLAUDE_PERMISSION_MODE``
(--permission-mode), ``CLAUDE_TOOLS`` (--tools; set and empty = no tools),
``CLAUDE_BARE=true`` (--bare: no hooks, plugins, CLAUDE.md discovery). Sessions are not
saved (--no-session-persistence): every task starts afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mecha_worker.backends import (
    Invocation,
    Outcome,
    as_count,
    failed,
    items,
    load_object,
    object_at,
    option,
    prompt_fits,
    text_at,
    total,
)
from mecha_worker.process import Run

_OPTIONS = (
    ("CLAUDE_MODEL", "--model"),
    ("CLAUDE_EFFORT", "--effort"),
    ("CLAUDE_MAX_TURNS", "--max-turns"),
    ("CLAUDE_MAX_BUDGET_USD", "--max-budget-usd"),
    ("CLAUDE_SYSTEM_PROMPT", "--system-prompt"),
    ("CLAUDE_APPEND_SYSTEM_PROMPT", "--append-system-prompt"),
    ("CLAUDE_PERMISSION_MODE", "--permission-mode"),
)
_LISTS = (
    ("CLAUDE_ALLOWED_TOOLS", "--allowedTools"),
    ("CLAUDE_DISALLOWED_TOOLS", "--disallowedTools"),
)


def invocation(prompt: str, env: Mapping[str, str]) -> Invocation:
    """The command line for one run."""
    argv = ["claude", "-p", "--output-format", "json", "--no-session-persistence"]
    if env.get("CLAUDE_BARE", "").strip().lower() in ("1", "true", "yes"):
        argv.append("--bare")
    if "CLAUDE_TOOLS" in env:
        argv += ["--tools", ",".join(items(env["CLAUDE_TOOLS"]))]
    for name, flag in _OPTIONS:
        argv += option(env, name, flag)
    for name, flag in _LISTS:
        tools = items(env.get(name, ""))
        if tools:
            argv += [flag, *tools]
    if prompt_fits(prompt):
        return Invocation((*argv, "--", prompt))
    return Invocation(tuple(argv), stdin_text=prompt)


def parse(run: Run, env: Mapping[str, str]) -> Outcome:
    """The result object's text, usage and model; is_error or a bad exit is a failure."""
    data = load_object(run.stdout)
    if data is None or ("result" not in data and "is_error" not in data):
        return failed(run, f"claude exited with code {run.exit_code} and printed no JSON result")
    text = text_at(data, "result")
    extra = _extra(data)
    if data.get("is_error") is True:
        reason = text.strip() or str(data.get("subtype") or "unknown error")
        message = f"claude reported an error: {reason}"
        return failed(run, message, text=text, reported=True, **extra)
    if run.exit_code != 0:
        return failed(run, f"claude exited with code {run.exit_code}", text=text, **extra)
    usage = object_at(data, "usage")
    return Outcome(
        text=text,
        model=_model(data.get("modelUsage")) or env.get("CLAUDE_MODEL", "").strip(),
        input_tokens=total(
            usage.get("input_tokens"),
            usage.get("cache_creation_input_tokens"),
            usage.get("cache_read_input_tokens"),
        ),
        output_tokens=as_count(usage.get("output_tokens")),
        extra=extra,
    )


def _extra(data: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    cost = data.get("total_cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        extra["cost_usd"] = cost
    turns = as_count(data.get("num_turns"))
    if turns is not None:
        extra["num_turns"] = turns
    if isinstance(data.get("session_id"), str):
        extra["session_id"] = data["session_id"]
    return extra


def _model(usage: Any) -> str:
    """The model that wrote the most output tokens, from ``modelUsage``."""
    if not isinstance(usage, dict) or not usage:
        return ""

    def written(name: str) -> int:
        entry = usage.get(name)
        return (as_count(entry.get("outputTokens")) or 0) if isinstance(entry, dict) else 0

    return str(max(usage, key=written))
