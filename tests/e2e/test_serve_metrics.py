"""A real `mecha serve`'s /metrics after real webhooks and tasks, read by prometheus-client's
classic and OpenMetrics parsers: the same figures in both, chosen by the Accept header."""

from __future__ import annotations

from pathlib import Path

import httpx

from mecha.testing.instant_worker import Behaviour, InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, endpoint_worker, wait_task
from tests.e2e.serving import make_home, post_github, pr_payload
from tests.metrics_check import PROMETHEUS_ACCEPT, Samples, parsed


def test_metrics_after_real_tasks_parse_the_same_in_both_formats(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.script([Behaviour(status=503)])  # the first send fails and is retried
        endpoint_worker(home, "counted", worker.url)
        with ServeProcess(home) as server:
            for number in (1, 2):
                answer = post_github(server.url, pr_payload(number=number))
                assert answer.status_code == 202, answer.text
                wait_task(server.url, answer.json()["id"], states=("completed",))
            classic = httpx.get(f"{server.url}/metrics", timeout=10)
            opened = httpx.get(
                f"{server.url}/metrics", headers={"Accept": PROMETHEUS_ACCEPT}, timeout=10
            )
    assert classic.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert opened.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert opened.text.endswith("# EOF\n") and "# EOF" not in classic.text
    read = [parsed(classic.text, openmetrics=False), parsed(opened.text, openmetrics=True)]
    for types, samples in read:
        check(types, samples)
    # the process figures move between scrapes; the rest is the same in both formats
    steady = [{k: v for k, v in s.items() if not k[0].startswith("process_")} for _, s in read]
    assert steady[0] == steady[1]


def check(types: dict[str, str], samples: Samples) -> None:
    assert samples[("mecha_webhooks_received_total", ())] == 2
    assert samples[("mecha_events_matched_total", ())] == 2
    assert samples[("mecha_tasks_sent_total", ())] == 3
    assert samples[("mecha_tasks_retried_total", ())] == 1
    assert samples[("mecha_tasks_completed_total", ())] == 2
    assert samples[("mecha_queue_depth", ())] == 0
    assert types["mecha_tasks_completed"] == "counter" and types["mecha_queue_depth"] == "gauge"
    by_outcome = {
        dict(labels)["outcome"]: value for (name, labels), value in samples.items()
        if name == "mecha_worker_tasks_total" and dict(labels)["worker"] == "counted"
    }  # fmt: skip
    assert by_outcome["sent"] == 3 and by_outcome["retried"] == 1
    assert by_outcome["completed"] == 2 and by_outcome["failed"] == 0
    assert samples[("mecha_dispatch_latency_seconds_count", ())] == 3
    assert samples[("mecha_dispatch_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert types["mecha_dispatch_latency_seconds"] == "histogram"
    counted = (("worker", "counted"),)
    assert samples[("mecha_worker_dispatch_latency_seconds_count", counted)] == 3
    assert samples[("mecha_worker_tasks_in_flight", (("worker", "counted"),))] == 0
    assert samples[("process_open_fds", ())] > 0
    assert samples[("process_start_time_seconds", ())] > 0
