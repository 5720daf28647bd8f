"""What a worker's answer or failure does to its task: the update to record (pure).

A completed send records the result; a transient failure with attempts left goes back to
pending with the time of the next attempt (backoff, or the worker's longer Retry-After,
never past the retry cap); out of attempts it is dead-lettered; any other failure fails
the task at once, keeping what the worker said.
"""

from __future__ import annotations

from dataclasses import dataclass

from mecha.duration import format_duration
from mecha.engine.pacing import over_cap, retry_delay
from mecha.result import TaskResult, result_json
from mecha.result_cap import DEFAULT_MAX_RESULT, cap_result
from mecha.runtimes.contract import WorkerFailure
from mecha.store import TaskUpdate
from mecha.task import Task, TaskState
from mecha.timeline import Step

_RUNNING = frozenset({TaskState.RUNNING})


@dataclass(frozen=True, slots=True)
class AfterFailure:
    """The update to record, and when to send again (None: never)."""

    update: TaskUpdate
    retry_in: float | None
    dead_letter: bool = False


def completed(
    task: Task, result: TaskResult, *, max_result: int = DEFAULT_MAX_RESULT
) -> TaskUpdate:
    """Running → completed, with the result cut to ``max_result`` bytes (``result_cap``)."""
    return TaskUpdate(
        task_id=task.id, state=TaskState.COMPLETED, only_from=_RUNNING,
        result=cap_result(result_json(result), max_result), error="", step=Step.COMPLETED,
        detail=summary(result),
    )  # fmt: skip


def after_failure(
    task: Task,
    failure: WorkerFailure,
    *,
    max_retries: int,
    now: float,
    retry_base: float,
    retry_cap: float,
    max_result: int = DEFAULT_MAX_RESULT,
) -> AfterFailure:
    """Running → pending again (a retry) or failed; ``task.attempts`` counts this send.

    A failed task keeps what the worker answered, cut to ``max_result`` bytes.
    """
    tries = max_retries + 1
    if failure.transient and task.attempts < tries:
        delay = retry_delay(
            task.attempts, base=retry_base, cap=retry_cap, retry_after=failure.retry_after
        )
        detail = (
            f"{failure.message}; attempt {task.attempts + 1} of {tries} in "
            f"{format_duration(delay)}{over_cap(failure.retry_after, retry_cap)}"
        )
        update = TaskUpdate(
            task_id=task.id, state=TaskState.PENDING, only_from=_RUNNING,
            error=failure.message, next_retry_at=now + delay, step=Step.RETRY, detail=detail,
        )  # fmt: skip
        return AfterFailure(update, delay)
    message = failure.message
    if failure.transient:
        message = (
            f"dead-letter after {task.attempts} attempts: {failure.message}"
            f"{over_cap(failure.retry_after, retry_cap)}"
        )
    answer = failure.result
    stored = cap_result(result_json(answer), max_result) if answer is not None else None
    update = TaskUpdate(
        task_id=task.id, state=TaskState.FAILED, only_from=_RUNNING, error=message,
        result=stored, step=Step.FAILED, detail=message,
    )  # fmt: skip
    return AfterFailure(update, None, dead_letter=failure.transient)


def summary(result: TaskResult) -> str:
    """A few words on what a result holds, for the timeline."""
    parts = []
    if result.output:
        parts.append(f"output {len(result.output)} chars")
    parts.extend(
        name
        for name, value in (
            ("comment", result.comment), ("labels", result.labels), ("status", result.status),
            ("commit", result.commit),
        )
        if value is not None
    )  # fmt: skip
    tokens = [
        f"{key.split('_')[0]} {result.metadata[key]}"
        for key in ("input_tokens", "output_tokens")
        if isinstance(result.metadata.get(key), int)
    ]
    if tokens:
        parts.append("tokens " + ", ".join(tokens))
    return "; ".join(parts) or "an empty result"
