"""What an answer or a failure does to a task: retry, dead-letter or fail (pure)."""

from __future__ import annotations

from mecha.engine.task_outcome import after_failure, completed, summary
from mecha.result import TaskResult
from mecha.runtimes.contract import WorkerFailure
from mecha.task import Task, TaskState

NOW = 1_000_000.0


def task(attempts: int) -> Task:
    return Task(id="t", worker="w", event_id="e", dedup_key="e:w", prompt="p", attempts=attempts)


def decide(attempts: int, failure: WorkerFailure, max_retries: int = 3):  # type: ignore[no-untyped-def]
    return after_failure(
        task(attempts), failure, max_retries=max_retries, now=NOW, retry_base=30, retry_cap=1800
    )


def test_a_transient_failure_with_attempts_left_is_retried_later() -> None:
    then = decide(2, WorkerFailure("worker answered 503: busy", transient=True))
    assert then.retry_in == 60
    assert then.update.state is TaskState.PENDING
    assert then.update.next_retry_at == NOW + 60
    assert then.update.detail == "worker answered 503: busy; attempt 3 of 4 in 1m"


def test_retry_after_longer_than_the_backoff_wins() -> None:
    then = decide(1, WorkerFailure("429", transient=True, retry_after=120))
    assert then.retry_in == 120


def test_retry_after_longer_than_the_cap_waits_the_cap_and_says_so() -> None:
    then = decide(1, WorkerFailure("worker answered 503: busy", transient=True, retry_after=3600))
    assert then.retry_in == 1800
    assert then.update.next_retry_at == NOW + 1800
    assert then.update.detail == (
        "worker answered 503: busy; attempt 2 of 4 in 30m (asked to wait 3600 s; at most 30m)"
    )


def test_asking_to_wait_for_ever_ends_in_a_dead_letter_that_says_why() -> None:
    forever = WorkerFailure("429", transient=True, retry_after=99999999999)
    assert decide(3, forever).retry_in == 1800  # every capped wait is one more attempt
    then = decide(4, forever)
    assert then.dead_letter and then.update.state is TaskState.FAILED
    assert then.update.error == (
        "dead-letter after 4 attempts: 429 (asked to wait 99999999999 s; at most 30m)"
    )


def test_out_of_attempts_is_a_dead_letter_with_the_last_error() -> None:
    then = decide(4, WorkerFailure("no answer", transient=True))
    assert then.retry_in is None and then.dead_letter
    assert then.update.state is TaskState.FAILED
    assert then.update.error == "dead-letter after 4 attempts: no answer"


def test_max_retries_zero_means_one_attempt() -> None:
    assert decide(1, WorkerFailure("x", transient=True), max_retries=0).retry_in is None


def test_a_permanent_failure_fails_at_once_and_keeps_what_the_worker_said() -> None:
    said = TaskResult(output="task timed out", metadata={"exit_code": 1})
    then = decide(1, WorkerFailure("exit code 1", transient=False, result=said))
    assert then.retry_in is None and not then.dead_letter
    assert then.update.result == {"output": "task timed out", "metadata": {"exit_code": 1}}


def test_completed_records_the_result_and_a_summary() -> None:
    result = TaskResult(output="hello", metadata={"input_tokens": 12, "output_tokens": 3})
    update = completed(task(1), result)
    assert update.state is TaskState.COMPLETED and update.error == ""
    assert update.detail == "output 5 chars; tokens input 12, output 3"
    assert summary(TaskResult()) == "an empty result"
