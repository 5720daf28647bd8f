"""The coding CLIs: for each, the command line to run and a parser for what it prints.

A backend is a module with two functions:

* ``invocation(prompt, env) -> Invocation``: argv (and stdin) for one non-interactive run;
  the prompt goes in as an argument after ``--`` (never parsed as an option), or on stdin
  when it is too big for one argument (Linux caps one argument at 128 KiB);
* ``parse(run, env) -> Outcome``: the model's text, usage and model name, or the failure;
* optionally ``environment(env) -> dict``: the CLI's environment, after any preparation.

A failure (the CLI's own error report, a non-zero exit, output that is not the format
the CLI documents) is always an Outcome with ``error`` set and a non-zero exit code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mecha_worker.process import Run

#: prompts bigger than this (UTF-8 bytes) go on stdin instead of argv
ARG_LIMIT = 100_000
#: how much of the CLI's stderr an error message quotes
STDERR_QUOTE = 300
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Invocation:
    """How to start one run."""

    argv: tuple[str, ...]
    stdin_text: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a run came to."""

    text: str = ""
    #: why the run failed ("" when it did not)
    error: str = ""
    exit_code: int = 0
    model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: more metadata (cost, turns, session id, ...)
    extra: Mapping[str, Any] = field(default_factory=dict)


def unchanged(env: Mapping[str, str]) -> dict[str, str]:
    """The environment as it is (for a CLI that needs nothing prepared)."""
    return dict(env)


@dataclass(frozen=True)
class Backend:
    """One CLI."""

    name: str
    invocation: Callable[[str, Mapping[str, str]], Invocation]
    parse: Callable[[Run, Mapping[str, str]], Outcome]
    #: the CLI's environment for one run (a module may prepare things first)
    environment: Callable[[Mapping[str, str]], dict[str, str]] = unchanged


def failed(
    run: Run, message: str, *, text: str = "", reported: bool = False, **extra: Any
) -> Outcome:
    """A failure; the exit code is never 0.

    Unless the CLI ``reported`` the failure itself (in its output format), the message
    ends with the last line of stderr.
    """
    quoted = "" if reported else stderr_tail(run)
    if quoted and quoted not in message:
        message = f"{message} (stderr: {quoted})"
    return Outcome(text=text, error=message, exit_code=run.exit_code or 1, extra=extra)


def stderr_tail(run: Run) -> str:
    """The last non-empty stderr line, shortened."""
    lines = [line.strip() for line in run.stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= STDERR_QUOTE else "…" + last[-STDERR_QUOTE:]


def load_object(text: str) -> dict[str, Any] | None:
    """The last JSON object a CLI printed that starts a line (one line or pretty-printed).

    Log lines or a stack trace before it are skipped, as is anything after it.
    """
    starts = [0] if text.startswith("{") else []
    starts += [index + 1 for index in _line_starts(text)]
    for start in reversed(starts):
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _line_starts(text: str) -> list[int]:
    """Indexes of the newlines followed by ``{``."""
    found, index = [], text.find("\n{")
    while index >= 0:
        found.append(index)
        index = text.find("\n{", index + 1)
    return found


def text_at(data: Mapping[str, Any], key: str) -> str:
    """The string at ``key`` ("" when absent or not a string)."""
    value = data.get(key)
    return value if isinstance(value, str) else ""


def object_at(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The object at ``key`` ({} when absent or not an object)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def as_count(value: Any) -> int | None:
    """A token count, or None when ``value`` is not a whole number ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def total(*values: Any) -> int | None:
    """The sum of the counts that are there (None if none is)."""
    counts = [count for count in map(as_count, values) if count is not None]
    return sum(counts) if counts else None


def items(text: str) -> list[str]:
    """A comma list from an environment variable, blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def prompt_fits(prompt: str) -> bool:
    """Whether the prompt can go in as one argument (not too big, no NUL character)."""
    return "\x00" not in prompt and len(prompt.encode("utf-8", errors="replace")) <= ARG_LIMIT


def option(env: Mapping[str, str], name: str, flag: str) -> list[str]:
    """``[flag, value]`` when the variable ``name`` is set, else nothing."""
    value = env.get(name, "").strip()
    return [flag, value] if value else []


def get(name: str) -> Backend:
    """The backend called ``name`` (claude, codex or gemini)."""
    from mecha_worker.backends import claude, codex, gemini

    modules = {"claude": claude, "codex": codex, "gemini": gemini}
    module = modules[name]
    prepare = getattr(module, "environment", unchanged)
    return Backend(name=name, invocation=module.invocation, parse=module.parse, environment=prepare)
