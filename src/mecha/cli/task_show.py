"""`mecha task show` as text: the task's fields, its prompt, the worker's result, the error."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mecha.cli.display import short
from mecha.event import timestamp
from mecha.task import Task, TaskState, progress_of

#: result fields in the order they are shown (the result contract, upstream §6.1)
RESULT_ORDER = ("output", "comment", "labels", "status", "commit", "metadata", "error")


def state_text(task: Task, *, now: float | None = None) -> str:
    """``running 1m12s of 10m, 42 tokens`` for a running task, ``superseded by 3f2a9c1d``
    for one a newer task of its flow key replaced, else just its state."""
    progress = progress_of(task, now=time.time() if now is None else now)
    text = f"{task.state.value} {progress.text()}" if progress else task.state.value
    if task.superseded_by:
        by = task.superseded_by[:8]
        text += f" by {by}" if task.state is TaskState.SUPERSEDED else f" (superseded by {by})"
    return text


def describe_task(task: Task, *, now: float | None = None) -> str:
    """Everything about one task but its timeline, as indented text."""
    lines = [
        f"task {task.id}",
        f"  worker:     {task.worker}",
        f"  state:      {state_text(task, now=now)}",
        f"  event:      {task.event_id or '- (sent through the API)'}",
        f"  attempts:   {task.attempts}",
        *([f"  flow key:   {task.flow_key}"] if task.flow_key else []),
        f"  created:    {timestamp(task.created_at)}",
    ]
    if task.dispatched_at:
        lines.append(f"  dispatched: {timestamp(task.dispatched_at)}")
    if task.finished_at:
        lines.append(f"  finished:   {timestamp(task.finished_at)}")
    if task.state is TaskState.PENDING and task.next_retry_at:
        wait = task.next_retry_at - (time.time() if now is None else now)
        when = f"in {int(wait)}s" if wait > 0 else "due now"
        lines.append(f"  next try:   {timestamp(task.next_retry_at)} ({when})")
    if task.error:
        lines.append("error:")
        lines.extend(_indented(task.error))
    lines.append("prompt:")
    lines.extend(_indented(task.prompt))
    if task.context:
        lines.append("context:")
        lines.extend(f"  {key}: {short(task.context[key])}" for key in sorted(task.context))
    lines.append("result:" if task.result else "result: (none yet)")
    lines.extend(result_lines(task.result))
    return "\n".join(lines)


def result_lines(result: Mapping[str, Any]) -> list[str]:
    """The worker's answer, field by field, readable (unknown fields as JSON)."""
    lines: list[str] = []
    keys = [k for k in RESULT_ORDER if k in result]
    keys += sorted(k for k in result if k not in RESULT_ORDER)
    for key in keys:
        value = result[key]
        if key == "output" and isinstance(value, str):
            lines.append("  output:")
            lines.extend(_indented(value, "    "))
        elif key == "comment" and isinstance(value, Mapping):
            target = f" (target {value['target']})" if value.get("target") else ""
            lines.append(f"  comment{target}:")
            lines.extend(_indented(str(value.get("body", "")), "    "))
        elif key == "labels" and isinstance(value, Mapping):
            added = [f"+{name}" for name in value.get("add", [])]
            removed = [f"-{name}" for name in value.get("remove", [])]
            lines.append(f"  labels:   {' '.join(added + removed) or '(none)'}")
        elif key == "status" and isinstance(value, Mapping):
            text = str(value.get("state", ""))
            if value.get("description"):
                text += f" — {value['description']}"
            if value.get("context"):
                text += f" ({value['context']})"
            lines.append(f"  status:   {text}")
        elif key == "commit" and isinstance(value, Mapping):
            diff = str(value.get("diff", ""))
            lines.append(f"  commit:   {value.get('message') or '(no message)'}")
            lines.append(f"            a diff of {len(diff.splitlines())} lines")
        elif key == "metadata" and isinstance(value, Mapping):
            pairs = ", ".join(f"{k}={short(v, 40)}" for k, v in value.items())
            lines.append(f"  metadata: {pairs}")
        else:
            lines.append(f"  {key}: {short(value)}")
    return lines


def _indented(text: str, indent: str = "  ") -> list[str]:
    return [indent + line for line in text.splitlines()] or [indent]
