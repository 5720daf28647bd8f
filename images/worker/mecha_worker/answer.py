"""The answer to ``POST /task``: the result contract (upstream §6.1) as JSON bytes.

A success carries the model's text as ``output`` and as ``comment.body`` (so a plain
review is posted as a comment), unless the text holds a structured answer: then its
checked comment/labels/status/commit are used as given. A failure carries ``error``,
a non-zero ``metadata.exit_code`` and never a comment. Secrets are scrubbed from the
encoded answer, and an answer over the engine's 10 MB read limit becomes a failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mecha_worker import structured
from mecha_worker.backends import Outcome

#: the most characters of model text kept in ``output``
MAX_OUTPUT = 400_000
#: the most characters in a comment body (GitHub refuses longer comments)
MAX_COMMENT = 65_536
#: the engine reads at most 10 MB of an answer
MAX_ANSWER_BYTES = 10 * 1024 * 1024
REDACTED = "[REDACTED]"


def from_outcome(outcome: Outcome, *, backend: str, duration_ms: int) -> dict[str, Any]:
    """The answer for a finished run."""
    meta = _metadata(outcome, backend=backend, duration_ms=duration_ms)
    output = _cut(outcome.text, MAX_OUTPUT, meta, "output_truncated")
    if outcome.error:
        failure: dict[str, Any] = {"error": outcome.error}
        if output:
            failure["output"] = output
        return {**failure, "metadata": meta}
    return {"output": output, **_write_back(outcome.text, meta), "metadata": meta}


def _write_back(text: str, meta: dict[str, Any]) -> dict[str, Any]:
    """comment/labels/status/commit: the model's structured answer, else the text."""
    found = structured.find(text)
    if found is None:
        if not text.strip():
            return {}
        return {"comment": {"body": _cut(text, MAX_COMMENT, meta, "comment_truncated")}}
    fields = dict(found.fields)
    if "comment" in fields:
        body = _cut(fields["comment"]["body"], MAX_COMMENT, meta, "comment_truncated")
        fields["comment"] = {**fields["comment"], "body": body}
    meta["structured"] = sorted(fields)
    if found.notes:
        meta["structured_notes"] = found.notes
    return fields


def dry_run(prompt: str, *, backend: str, command: list[str]) -> dict[str, Any]:
    """The answer in dry-run mode: the prompt echoed, the command that would have run."""
    meta = {"dry_run": True, "backend": backend, "exit_code": 0, "duration_ms": 0}
    if command:
        meta["command"] = command
    return {"output": prompt, "metadata": meta}


def timed_out(seconds: float, *, backend: str, duration_ms: int) -> dict[str, Any]:
    """The answer for a run killed at the time limit."""
    meta = {"backend": backend, "duration_ms": duration_ms, "exit_code": 124, "timed_out": True}
    return {"error": f"task timed out after {seconds:g} s", "metadata": meta}


def internal_error(message: str, *, backend: str) -> dict[str, Any]:
    """The answer when the worker itself failed."""
    return {"error": message, "metadata": {"backend": backend, "exit_code": 1}}


def encode(answer: dict[str, Any], *, secrets: Iterable[str] = ()) -> bytes:
    """JSON bytes with every secret replaced; too big an answer becomes a failure."""
    text = json.dumps(answer, ensure_ascii=False)
    for secret in secrets:
        for form in {secret, json.dumps(secret, ensure_ascii=False)[1:-1]}:
            text = text.replace(form, REDACTED)
    data = text.encode("utf-8")
    if len(data) <= MAX_ANSWER_BYTES:
        return data
    found = answer.get("metadata")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    small = {
        "error": f"the answer is {len(data)} bytes, over the {MAX_ANSWER_BYTES}-byte limit",
        "metadata": {**meta, "exit_code": meta.get("exit_code") or 1},
    }
    return encode(small, secrets=secrets)


def _metadata(outcome: Outcome, *, backend: str, duration_ms: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"backend": backend}
    if outcome.model:
        meta["model"] = outcome.model
    if outcome.input_tokens is not None:
        meta["input_tokens"] = outcome.input_tokens
    if outcome.output_tokens is not None:
        meta["output_tokens"] = outcome.output_tokens
    meta["duration_ms"] = duration_ms
    meta["exit_code"] = (outcome.exit_code or 1) if outcome.error else 0
    for key, value in outcome.extra.items():
        meta.setdefault(key, value)
    return meta


def _cut(text: str, limit: int, meta: dict[str, Any], flag: str) -> str:
    if len(text) <= limit:
        return text
    meta[flag] = True
    return text[: limit - 1] + "…"
