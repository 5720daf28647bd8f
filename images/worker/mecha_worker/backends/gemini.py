"""Gemini CLI: ``gemini --output-format json [options] --prompt=<prompt>``.

It prints one JSON object when it ends::

    {"session_id": "...", "response": "text",
     "stats": {"models": {"gemini-2.5-flash": {"api": {...},
               "tokens": {"input": 9, "prompt": 10, "candidates": 5, "total": 15,
                          "cached": 1, "thoughts": 0, "tool": 0}}}, "tools": {...}}}

and on failure ``{"session_id": "...", "error": {"type": "...", "message": "...",
"code": 1}}`` (on stdout or stderr) with a non-zero exit. Input tokens are ``prompt``
(which includes cached ones; older versions only had ``prompt``), output tokens
``candidates``, summed over the models used.

The prompt is passed as ``--prompt=<text>`` so a prompt that starts with ``-`` is never
read as an option. Options from the environment: ``GEMINI_MODEL`` (--model),
``GEMINI_APPROVAL_MODE`` (--approval-mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mecha_worker.backends import (
    Invocation,
    Outcome,
    failed,
    load_object,
    option,
    prompt_fits,
    text_at,
    total,
)
from mecha_worker.process import Run

#: the argument sent when the prompt itself goes on stdin (Gemini reads both)
STDIN_PROMPT = "Follow the instructions above."


def invocation(prompt: str, env: Mapping[str, str]) -> Invocation:
    """The command line for one run."""
    argv = ["gemini", "--output-format", "json"]
    argv += option(env, "GEMINI_MODEL", "--model")
    argv += option(env, "GEMINI_APPROVAL_MODE", "--approval-mode")
    if prompt_fits(prompt):
        return Invocation((*argv, f"--prompt={prompt}"))
    return Invocation((*argv, f"--prompt={STDIN_PROMPT}"), stdin_text=prompt)


def parse(run: Run, env: Mapping[str, str]) -> Outcome:
    """The response and the per-model token stats; an error object or bad exit fails."""
    data = load_object(run.stdout)
    if data is None:
        data = load_object(run.stderr)
        if data is None or "error" not in data:
            return failed(run, f"gemini exited with code {run.exit_code} and printed no JSON")
    text = text_at(data, "response")
    extra = {"session_id": data["session_id"]} if isinstance(data.get("session_id"), str) else {}
    error = data.get("error")
    if error:
        message = f"gemini reported an error: {_message(error)}"
        return failed(run, message, text=text, reported=True, **extra)
    if run.exit_code != 0:
        return failed(run, f"gemini exited with code {run.exit_code}", text=text, **extra)
    if "response" not in data:
        return failed(run, "gemini printed JSON without a response", **extra)
    models = _models(data.get("stats"))
    return Outcome(
        text=text,
        model=_main_model(models) or env.get("GEMINI_MODEL", "").strip(),
        input_tokens=total(*(_prompt_tokens(entry) for entry in models.values())),
        output_tokens=total(*(_tokens(entry).get("candidates") for entry in models.values())),
        extra=extra,
    )


def _models(stats: Any) -> dict[str, Any]:
    models = stats.get("models") if isinstance(stats, dict) else None
    return models if isinstance(models, dict) else {}


def _tokens(entry: Any) -> dict[str, Any]:
    tokens = entry.get("tokens") if isinstance(entry, dict) else None
    return tokens if isinstance(tokens, dict) else {}


def _prompt_tokens(entry: Any) -> Any:
    tokens = _tokens(entry)
    return tokens["prompt"] if "prompt" in tokens else tokens.get("input")


def _main_model(models: Mapping[str, Any]) -> str:
    """The model that wrote the most, when stats name any."""
    if not models:
        return ""
    return str(max(models, key=lambda name: total(_tokens(models[name]).get("candidates")) or 0))


def _message(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type")
        if isinstance(message, str) and message.strip():
            return f"{kind}: {message.strip()}" if isinstance(kind, str) and kind else message
    return str(error)
