"""A real `mecha serve` sending tasks to real HTTP workers: queues, limits, retries, health."""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from mecha.store.sqlite.store import open_sqlite
from mecha.task import TaskState
from mecha.testing.instant_worker import Behaviour, InstantWorker
from mecha.testing.serve_process import ServeProcess
from mecha.worker.kind import WorkerState
from tests.e2e.dispatching import FAST, endpoint_worker, set_state, timeline, wait_task
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload
from tests.metrics_check import value


def send_prs(url: str, count: int, first: int = 1) -> list[str]:
    ids = []
    for number in range(first, first + count):
        answer = post_github(url, pr_payload(number=number))
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    return ids


def test_a_webhook_becomes_a_task_the_worker_answers(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        endpoint_worker(home, "reviewer", worker.url)
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1, first=42)
            [task] = wait_task(server.url, event_id)
            steps = [
                (e["step"], e["worker"])
                for e in timeline(server.url, event_id)
                if e["step"] not in ("policy", "dry run")  # write-back: see test_serve_writeback
            ]
            shown = server_event(server.url, event_id)
        [got] = worker.requests
    assert task["state"] == "completed", task
    assert task["attempts"] == 1
    assert task["result"]["output"].startswith("ok: Review #42")
    assert got.prompt == "Review #42: Fix the thing"
    assert got.id == task["id"]
    assert got.context["repo_owner"] == "octo" and got.context["number"] == 42
    assert shown["state"] == "completed"
    assert steps == [
        ("received", ""), ("matched", ""), ("dispatched", "reviewer"), ("completed", "reviewer"),
    ]  # fmt: skip


def server_event(url: str, event_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = httpx.get(f"{url}/event/{event_id}", timeout=10).json()
    return shown


def test_tasks_for_a_busy_worker_wait_in_its_queue(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.set(delay=0.3)
        endpoint_worker(home, "slow", worker.url)
        with ServeProcess(home) as server:
            ids = send_prs(server.url, 3)
            tasks = [wait_task(server.url, i)[0] for i in ids]
        assert worker.max_in_flight == 1  # per-worker concurrency defaults to 1
    assert [t["state"] for t in tasks] == ["completed"] * 3
    assert all(t["attempts"] == 1 for t in tasks)


def test_a_worker_with_concurrency_gets_that_many_at_once(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.set(delay=0.5)
        endpoint_worker(home, "wide", worker.url, extra="concurrency: 3\n")
        with ServeProcess(home) as server:
            ids = send_prs(server.url, 5)
            for event_id in ids:
                wait_task(server.url, event_id)
        assert worker.max_in_flight == 3


def test_the_rate_limit_spaces_tasks_out(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        extra = "concurrency: 8\nrate_limit: {per_second: 5, burst: 2}\n"
        endpoint_worker(home, "paced", worker.url, extra=extra, online=False)
        with ServeProcess(home) as server:
            ids = send_prs(server.url, 7)
            for event_id in ids:  # all queued before the worker may take one: only the
                wait_task(server.url, event_id, states=("pending",))  # limiter spaces them
            set_state(home, "paced", WorkerState.ONLINE)
            tasks = [wait_task(server.url, event_id, timeout=60)[0] for event_id in ids]
        received = sorted(worker.requests, key=lambda r: r.received_at)
    assert [t["state"] for t in tasks] == ["completed"] * 7
    assert len(received) == 7  # each once
    # a burst of 2 goes at once, then one every 0.2 s, in the order the events came
    numbers = [int(r.prompt.split("#")[1].split(":")[0]) for r in received]
    assert sorted(numbers[:2]) == [1, 2] and numbers[2:] == [3, 4, 5, 6, 7]
    times = [r.received_at for r in received]
    # the bucket's promise: at most 2 + 5·t tasks in any t seconds. Half the spacing is
    # asked of windows of 4 or more, so a busy machine's delays (which only add, except at
    # a window's first task) cannot break it, and without the limiter it fails at once
    for i, j in itertools.combinations(range(7), 2):
        if j - i >= 3:
            assert times[j] - times[i] >= 0.5 * (j - i - 1) / 5, (i, j, times)
    # the burst, relative to the paced gap (0.2 s), not to the clock: a busy machine
    # stretches both
    paced = (times[-1] - times[1]) / 5
    assert times[1] - times[0] < paced / 2, times


def test_transient_failures_retry_with_backoff_then_succeed(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.script([Behaviour(status=503), Behaviour(status=502)])
        endpoint_worker(home, "flaky", worker.url)
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            [task] = wait_task(server.url, event_id)
            # write-back steps (policy, dry run) are tested in test_serve_writeback
            steps = [
                e["step"]
                for e in timeline(server.url, event_id)
                if e["step"] not in ("policy", "dry run")
            ]
        times = [r.received_at for r in worker.requests]
    assert task["state"] == "completed" and task["attempts"] == 3
    assert steps.count("retry") == 2 and steps[-1] == "completed"
    assert times[1] - times[0] >= 0.1  # 0.1 s after the first failure
    assert times[2] - times[1] >= 0.2  # then twice that


def test_retries_run_out_into_the_dead_letter(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.set(status=504)
        endpoint_worker(home, "down", worker.url, extra="max_retries: 2\n")
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            [task] = wait_task(server.url, event_id)
            shown = server_event(server.url, event_id)
        assert len(worker.requests) == 3
    assert task["state"] == "failed"
    assert task["error"].startswith("dead-letter after 3 attempts: ")
    assert "504" in task["error"]
    assert shown["state"] == "failed"


def test_retry_after_from_a_busy_worker_is_honoured(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.script([Behaviour(status=429, retry_after="1")])
        endpoint_worker(home, "busy", worker.url)
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            [task] = wait_task(server.url, event_id)
        first, second = (r.received_at for r in worker.requests)
    assert task["state"] == "completed"
    assert second - first >= 0.95


def test_a_retry_after_longer_than_the_cap_waits_only_the_cap(tmp_path: Path) -> None:
    # a worker asking for an hour parks its task for retry_cap (30 m), not the hour
    home = make_home(tmp_path, config=FAST.replace("retry_cap: 2s", "retry_cap: 30m"))
    with InstantWorker() as worker:
        worker.script([Behaviour(status=503, retry_after="3600")])
        endpoint_worker(home, "slow", worker.url)
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            retry = wait_step(server.url, event_id, "retry")
            store = open_sqlite(home / "mecha.db")
            try:
                [stored] = [
                    store.get_task(t["id"]) for t in server_event(server.url, event_id)["tasks"]
                ]
            finally:
                store.close()
    assert stored.state is TaskState.PENDING and stored.attempts == 1
    assert stored.next_retry_at <= stored.updated_at + 1800
    assert stored.next_retry_at > stored.updated_at + 1700  # the wait asked for, capped
    assert "in 30m (asked to wait 3600 s; at most 30m)" in retry["detail"]


def test_a_worker_asking_to_wait_for_ever_is_dead_lettered(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)  # retry_cap: 2s
    with InstantWorker() as worker:
        worker.set(status=503, retry_after="99999999999")
        endpoint_worker(home, "stuck", worker.url, extra="max_retries: 1\n")
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            [task] = wait_task(server.url, event_id)
        assert len(worker.requests) == 2
    assert task["state"] == "failed"
    assert task["error"].startswith("dead-letter after 2 attempts: ")
    assert task["error"].endswith("(asked to wait 99999999999 s; at most 2s)")


def wait_step(url: str, event_id: str, step: str, timeout: float = 60.0) -> dict[str, Any]:
    """The event's first timeline entry of ``step``, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in timeline(url, event_id) if e["step"] == step]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {step} step for {event_id}")
        time.sleep(0.03)


def test_a_worker_reporting_failure_fails_the_task_at_once(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.set(exit_code=1, result={"output": "task timed out", "metadata": {"exit_code": 1}})
        endpoint_worker(home, "llm", worker.url)
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            [task] = wait_task(server.url, event_id)
    assert task["state"] == "failed" and task["attempts"] == 1
    assert "exit code 1" in task["error"] and "task timed out" in task["error"]
    assert task["result"]["output"] == "task timed out"  # what the worker said is kept


def test_a_garbage_answer_fails_with_a_quote(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.set(garbage=True)
        endpoint_worker(home, "html", worker.url)
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            [task] = wait_task(server.url, event_id)
    assert task["state"] == "failed" and task["attempts"] == 1
    assert "<html>" in task["error"]


def test_tasks_of_an_offline_worker_wait_until_it_is_started(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        endpoint_worker(home, "later", worker.url, online=False)
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            time.sleep(0.5)
            [task] = wait_task(server.url, event_id, states=("pending",))
            waiting = [e for e in timeline(server.url, event_id) if e["step"] == "waiting"]
            assert not worker.requests
            set_state(home, "later", WorkerState.ONLINE)
            [task] = wait_task(server.url, event_id)
    assert task["state"] == "completed"
    assert len(waiting) == 1 and "mecha worker start later" in waiting[0]["detail"]


def test_the_health_loop_marks_error_and_recovers(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)

    def state() -> str:
        store = open_sqlite(home / "mecha.db")
        try:
            return store.get_worker("watched").state.value
        finally:
            store.close()

    def becomes(wanted: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if state() == wanted:
                return True
            time.sleep(0.05)
        return False

    with InstantWorker() as worker:
        endpoint_worker(home, "watched", worker.url)
        with ServeProcess(home):
            worker.health_status = 500
            assert becomes("error")
            worker.health_status = 503  # busy is healthy: never error for it
            assert becomes("online")
            worker.health_status = 200
            time.sleep(0.5)
            assert state() == "online"


def test_one_slow_worker_does_not_starve_another(tmp_path: Path) -> None:
    config = FAST + "  concurrency: 2\n"
    home = make_home(tmp_path, config=config)
    slow_rule = rule_for("slow")
    fast_rule = rule_for("fast")
    with InstantWorker() as slow, InstantWorker() as fast:
        slow.set(delay=1.0)
        extra = "concurrency: 2\n"
        endpoint_worker(home, "slow", slow.url, extra=extra, rules=slow_rule, online=False)
        endpoint_worker(home, "fast", fast.url, rules=fast_rule, online=False)
        with ServeProcess(home) as server:
            ids = [post_github(server.url, pr_payload(number=n)).json()["id"] for n in range(1, 5)]
            for event_id in ids:  # every task queued before either worker may take one
                wait_task(server.url, event_id, states=("pending",), count=2)
            with sqlite3.connect(home / "mecha.db") as conn:  # both online in one commit
                conn.execute("UPDATE workers SET state = 'online'")
            for event_id in ids:
                wait_task(server.url, event_id, count=2)
        fast_times = sorted(r.received_at for r in fast.requests)
        slow_times = sorted(r.received_at for r in slow.requests)
    # the global limit is 2 and slow may take both, yet every fast task went out before
    # slow's third (which can start only once one of its 1 s tasks ended)
    assert len(fast_times) == 4 and len(slow_times) == 4
    assert fast_times[-1] < slow_times[2]


def rule_for(name: str) -> str:
    return f"""  - source: github
    on: [pull_request.opened]
    prompt: "{name} #{{{{.number}}}}"
"""


def test_tasks_of_a_removed_worker_fail_with_the_reason(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        endpoint_worker(home, "gone", worker.url, online=False)
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            wait_task(server.url, event_id, states=("pending",))
            assert mecha_cli(home, "worker", "remove", "gone").returncode == 0
            [task] = wait_task(server.url, event_id)
    assert task["state"] == "failed"
    assert task["error"] == 'worker "gone" is not registered (was it removed?)'


def test_health_shows_what_the_dispatcher_did(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.script([Behaviour(status=503)])
        endpoint_worker(home, "counted", worker.url)
        with ServeProcess(home) as server:
            [event_id] = send_prs(server.url, 1)
            wait_task(server.url, event_id)
            health = httpx.get(f"{server.url}/health", timeout=10).json()
            metrics = httpx.get(f"{server.url}/metrics", timeout=10)
    assert health["tasks_sent"] == 2 and health["tasks_retried"] == 1
    assert metrics.headers["content-type"].startswith("text/plain")
    page = metrics.text
    assert value(page, "mecha_tasks_completed_total") == 1
    assert value(page, "mecha_tasks_retried_total") == 1
    assert value(page, "mecha_webhooks_received_total") == 1
    assert value(page, "mecha_dispatch_latency_seconds_count") == 2
    assert value(page, "mecha_dispatch_latency_seconds_bucket", le="+Inf") == 2
    assert health["tasks_completed"] == 1 and health["tasks_in_flight"] == 0


def test_cancelling_a_running_task_frees_its_worker(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.script([Behaviour(hang=True)])
        endpoint_worker(home, "stuck", worker.url)
        with ServeProcess(home) as server:
            [first, second] = send_prs(server.url, 2)
            worker.wait_for(1)
            [task] = wait_task(server.url, first, states=("running",))
            done = mecha_cli(home, "task", "cancel", task["id"])
            assert done.returncode == 0, done.stderr
            # concurrency 1: the second task goes out only once the first send is abandoned
            [other] = wait_task(server.url, second, timeout=10)
            [again] = wait_task(server.url, first, states=("cancelled",))
    assert other["state"] == "completed"
    assert again["result"] == {}  # nothing the hung worker might say is recorded
