"""Codex CLI: ``codex exec --json --skip-git-repo-check --ephemeral [options] -- <prompt>``.

It prints one JSON event per line (JSONL)::

    {"type": "thread.started", "thread_id": "..."}
    {"type": "turn.started"}
    {"type": "item.completed", "item": {"id": "item_0", "type": "agent_message", "text": "..."}}
    {"type": "turn.completed", "usage": {"input_tokens": 10, "cached_input_tokens": 0,
                                         "output_tokens": 5}}

and on failure ``{"type": "turn.failed", "error": {"message": "..."}}`` and/or
``{"type": "error", "message": "..."}``, exiting 1. The last ``agent_message`` is the
answer. A run is a success only when a turn completed, no turn failed and the exit code
is 0 (an ``error`` event followed by a completed turn was a retry that worked).

Options from the environment: ``CODEX_MODEL`` (--model), ``CODEX_EFFORT``
(-c model_reasoning_effort=...), ``CODEX_SANDBOX`` (--sandbox), ``CODEX_PROFILE``
(--profile).

Codex writes its state (sqlite files, logs) into its home, ``$CODEX_HOME`` or
``~/.codex``, and stops with "Permission denied" when it cannot. When ``~/.codex`` is a
read-only mount (credentials shared from the host), its ``auth.json`` and
``config.toml`` are copied to a writable home in the temp folder, which the run uses.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mecha_worker.backends import (
    Invocation,
    Outcome,
    failed,
    object_at,
    option,
    prompt_fits,
    total,
)
from mecha_worker.process import Run

#: the files of a read-only ~/.codex that a writable copy needs
HOME_FILES = ("auth.json", "config.toml")


def environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment, with CODEX_HOME moved to a writable copy when ~/.codex is read-only."""
    result = dict(env)
    if env.get("CODEX_HOME"):
        return result
    home = os.path.join(env.get("HOME") or tempfile.gettempdir(), ".codex")
    if not os.path.isdir(home) or os.access(home, os.W_OK):
        return result
    copy = os.path.join(tempfile.gettempdir(), f"mecha-codex-home-{os.getuid()}")
    os.makedirs(copy, mode=0o700, exist_ok=True)
    for name in HOME_FILES:
        source = os.path.join(home, name)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(copy, name))
            os.chmod(os.path.join(copy, name), 0o600)
    result["CODEX_HOME"] = copy
    return result


def invocation(prompt: str, env: Mapping[str, str]) -> Invocation:
    """The command line for one run."""
    argv = ["codex", "exec", "--json", "--skip-git-repo-check", "--ephemeral"]
    argv += option(env, "CODEX_MODEL", "--model")
    argv += option(env, "CODEX_SANDBOX", "--sandbox")
    argv += option(env, "CODEX_PROFILE", "--profile")
    effort = env.get("CODEX_EFFORT", "").strip()
    if effort:
        argv += ["-c", f"model_reasoning_effort={json.dumps(effort)}"]
    if prompt_fits(prompt):
        return Invocation((*argv, "--", prompt))
    return Invocation((*argv, "-"), stdin_text=prompt)


@dataclass
class _Events:
    """What the event stream said, in order."""

    text: str = ""
    completed: int = 0
    failure: str = ""
    error: str = ""
    input_tokens: list[Any] = field(default_factory=list)
    output_tokens: list[Any] = field(default_factory=list)
    cached_tokens: list[Any] = field(default_factory=list)
    thread_id: str = ""
    events: int = 0

    def add(self, event: Mapping[str, Any]) -> None:
        self.events += 1
        kind = event.get("type")
        if kind == "item.completed":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "agent_message":
                self.text = str(item.get("text") or "")
        elif kind == "turn.completed":
            self.completed += 1
            usage = object_at(event, "usage")
            self.input_tokens.append(usage.get("input_tokens"))
            self.output_tokens.append(usage.get("output_tokens"))
            self.cached_tokens.append(usage.get("cached_input_tokens"))
        elif kind == "turn.failed":
            self.failure = _message(event.get("error")) or "turn failed"
        elif kind == "error":
            self.error = _message(event) or "error"
        elif kind == "thread.started" and isinstance(event.get("thread_id"), str):
            self.thread_id = event["thread_id"]


def parse(run: Run, env: Mapping[str, str]) -> Outcome:
    """The last agent message and the turns' usage; a failed turn or bad exit fails."""
    seen = _Events()
    for line in run.stdout.splitlines():
        event = _event(line)
        if event is not None:
            seen.add(event)
    extra: dict[str, Any] = {"thread_id": seen.thread_id} if seen.thread_id else {}
    cached = total(*seen.cached_tokens)
    if cached is not None:
        extra["cached_input_tokens"] = cached
    if seen.failure:
        message = f"codex turn failed: {seen.failure}"
        return failed(run, message, text=seen.text, reported=True, **extra)
    if run.exit_code != 0:
        why = f": {seen.error}" if seen.error else ""
        return failed(run, f"codex exited with code {run.exit_code}{why}", text=seen.text, **extra)
    if not seen.completed:
        why = seen.error or ("no turn completed" if seen.events else "no JSON events printed")
        return failed(run, f"codex did not complete its turn: {why}", text=seen.text, **extra)
    return Outcome(
        text=seen.text,
        model=env.get("CODEX_MODEL", "").strip(),
        input_tokens=total(*seen.input_tokens),
        output_tokens=total(*seen.output_tokens),
        extra=extra,
    )


def _event(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("type"), str) else None


def _message(value: Any) -> str:
    """An event's message; a message that is an API error body gives its own message."""
    text = value.get("message") if isinstance(value, dict) else value
    if not isinstance(text, str):
        return ""
    text = text.strip()
    try:
        body = json.loads(text) if text.startswith("{") else None
    except ValueError:
        body = None
    inner = body.get("error") if isinstance(body, dict) else None
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        return str(inner["message"]).strip()
    return text
