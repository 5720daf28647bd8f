"""Budgets in a real `mecha serve`: a worker over its tasks_per_hour holds the next task back,
and `GET /budgets`, `/metrics`, `/health`, `mecha budget` and `mecha event show` say so."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, endpoint_worker, timeline, wait_task
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload
from tests.metrics_check import value

CONFIG = FAST + "budget:\n  tokens_per_day: 1000000\n  per_task: 2000\n"
REASON = "over worker reviewer's budget: tasks_per_hour 1, 1 task used in the last hour"


def waiting_entry(url: str, event_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in timeline(url, event_id) if e["step"] == "waiting"]
        if found:
            return found[0]
        assert time.monotonic() < deadline, timeline(url, event_id)
        time.sleep(0.05)


def test_a_task_over_budget_waits_and_every_view_says_why(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=CONFIG)
    with InstantWorker() as worker:
        endpoint_worker(home, "reviewer", worker.url, extra="budget:\n  tasks_per_hour: 1\n")
        with ServeProcess(home) as server:
            first = post_github(server.url, pr_payload(number=1)).json()["id"]
            wait_task(server.url, first)
            second = post_github(server.url, pr_payload(number=2)).json()["id"]
            entry = waiting_entry(server.url, second)
            check_api(server.url)
            check_metrics(server.url)
            check_cli(home, worker.url)
            shown = mecha_cli(home, "event", "show", second)
            [task] = httpx.get(f"{server.url}/event/{second}", timeout=10).json()["tasks"]
        assert worker.received == 1
    assert task["state"] == "pending"
    assert entry["worker"] == "reviewer" and entry["detail"].startswith(REASON), entry
    assert "the window frees at " in entry["detail"]
    # mecha event show: the wait on the task's timeline
    assert shown.returncode == 0, shown.stderr
    assert "waiting" in shown.stdout and REASON in " ".join(shown.stdout.split())


def check_api(url: str) -> None:
    """GET /budgets: the worker's two windows, then the global ones."""
    budgets = httpx.get(f"{url}/budgets", timeout=10).json()
    lines = {(b["worker"], b["window"]): b for b in budgets}
    assert list(lines) == [("reviewer", "tokens_per_day"), ("reviewer", "tasks_per_hour"),
                           (None, "tokens_per_day"), (None, "tasks_per_hour")]  # fmt: skip
    tasks = lines[("reviewer", "tasks_per_hour")]
    assert (tasks["used"], tasks["reserved"], tasks["limit"], tasks["left"]) == (1, 0, 1, 0)
    assert tasks["waiting"] == 1 and tasks["next_frees_at"].endswith("Z")
    everyone = lines[(None, "tokens_per_day")]
    assert (everyone["used"], everyone["limit"], everyone["left"]) == (2000, 1_000_000, 998_000)
    one = httpx.get(f"{url}/budgets?worker=reviewer", timeout=10).json()
    assert [(b["worker"], b["window"]) for b in one] == [
        ("reviewer", "tokens_per_day"), ("reviewer", "tasks_per_hour")
    ]  # fmt: skip
    unknown = httpx.get(f"{url}/budgets?worker=nobody", timeout=10)
    assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]


def check_metrics(url: str) -> None:
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    reviewer = {"budget": "worker", "worker": "reviewer"}
    assert value(metrics, "mecha_budget_tasks", **reviewer, state="used") == 1
    assert value(metrics, "mecha_budget_tasks", **reviewer, state="limit") == 1
    everyone = {"budget": "global", "worker": ""}  # no worker: Prometheus drops the label
    assert value(metrics, "mecha_budget_tokens", **everyone, state="limit") == 1_000_000
    assert value(metrics, "mecha_budget_waiting", **reviewer, window="tasks_per_hour") == 1
    assert value(metrics, "mecha_tasks_budget_waits_total") == 1
    assert value(metrics, "mecha_budget_tokens_settled_total") == 2000
    health = httpx.get(f"{url}/health", timeout=10).json()
    assert health["tasks_budget_waiting"] == 1 and health["tasks_budget_waits"] == 1


def check_cli(home: Path, url: str) -> None:
    table = mecha_cli(home, "budget")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ["BUDGET", "WINDOW", "USED", "RESERVED", "LIMIT", "LEFT", "IN", "FLIGHT",
                       "WAITING", "FREES"]  # fmt: skip
    assert rows[1][:8] == ["reviewer", "tokens/24h", "2,000", "0", "-", "-", "0", "0"]
    assert rows[2][:8] == ["reviewer", "tasks/1h", "1", "0", "1", "0", "0", "1"]
    assert rows[3][:6] == ["(all", "workers)", "tokens/24h", "2,000", "0", "1,000,000"]
    as_json = mecha_cli(home, "budget", "reviewer", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [line["window"] for line in json.loads(as_json.stdout)] == [
        "tokens_per_day", "tasks_per_hour"
    ]  # fmt: skip
    nobody = mecha_cli(home, "budget", "nobody")
    assert nobody.returncode == 1 and 'no worker named "nobody"' in nobody.stderr
    # with a global budget every worker is shown (all reserve): its use, no limit of its own
    endpoint_worker(home, "free", url, online=False)
    free = mecha_cli(home, "budget", "free")
    assert free.returncode == 0, free.stderr
    assert [line.split()[:2] for line in free.stdout.splitlines()[1:]] == [
        ["free", "tokens/24h"], ["free", "tasks/1h"]
    ]  # fmt: skip


def test_without_budgets_mecha_budget_says_how_to_set_one(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    endpoint_worker(home, "free", "http://127.0.0.1:9", online=False)
    listed = mecha_cli(home, "budget")
    one = mecha_cli(home, "budget", "free")
    assert listed.returncode == 0 and listed.stdout.startswith("no budgets: add budget:")
    assert one.returncode == 1, one.stderr
    assert one.stderr.startswith('error: no budget applies to worker "free"')
    assert "budget: section in its worker file" in one.stderr
