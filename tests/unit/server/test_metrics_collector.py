"""/metrics' collector and route: every family read back by prometheus-client's own parsers
(classic text and OpenMetrics), exact large counts, seconds, the worker label cap, the
process metrics, content negotiation, and the 403 of a closed API."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from starlette.requests import Request

from mecha.engine.histogram import Histogram
from mecha.engine.worker_figures import WorkerFigures
from mecha.server.metrics import Scrapes, metrics
from mecha.server.metrics_collector import DISPATCH, OTHER, Figures, MechaCollector
from mecha.server.models import BudgetLineJson
from tests.metrics_check import OPENMETRICS, PROMETHEUS_ACCEPT, Samples, parsed


def both(scrapes: Scrapes, figures: Figures) -> list[tuple[dict[str, str], Samples]]:
    """``figures`` rendered and parsed as classic text and as OpenMetrics."""
    classic, media = scrapes.render(figures, "")
    assert media == "text/plain; version=0.0.4; charset=utf-8"
    opened, media = scrapes.render(figures, PROMETHEUS_ACCEPT)
    assert media.startswith(f"{OPENMETRICS}; version=1.0.0")
    assert opened.decode().endswith("# EOF\n") and b"# EOF" not in classic
    return [parsed(classic.decode(), openmetrics=False), parsed(opened.decode(), openmetrics=True)]


def budget(worker: str | None, window: str, used: int, limit: int | None) -> BudgetLineJson:
    line: dict[str, Any] = {
        "worker": worker, "window": window, "window_start": "", "window_end": "",
        "used": used, "reserved": 1, "limit": limit, "left": None, "in_flight": 0,
        "waiting": 2, "next_frees_at": None,
    }  # fmt: skip
    return cast(BudgetLineJson, line)


def test_every_figure_parses_back_exactly_in_both_formats() -> None:
    latency = Histogram()
    for ms in (3, 3, 70_000):
        latency.observe(ms)
    by_worker = WorkerFigures()
    by_worker.count("reviewer", "sent", 1_234_567)
    by_worker.count("reviewer", "completed", 2**53 - 1)
    by_worker.observe("reviewer", 250)
    dispatch = {key: index + 1 for index, key in enumerate(DISPATCH)}
    figures = Figures(
        stored=1_234_567, matched=7, dispatch=dispatch, latency=latency, by_worker=by_worker,
        load={"reviewer": (4, 1)}, budgets=[budget(None, "tokens_per_day", 2000, 1_000_000)],
    )  # fmt: skip
    for types, samples in both(Scrapes.made(), figures):
        # the count the hand-written page printed as 1.23457e+06
        assert samples[("mecha_webhooks_received_total", ())] == 1234567
        assert samples[("mecha_events_matched_total", ())] == 7
        for index, (name, _, kind) in enumerate(DISPATCH.values()):
            assert samples[(name, ())] == index + 1, name
            assert types[name.removesuffix("_total")] == kind, name
            assert name.endswith("_total") == (kind == "counter"), name
        worker = (("outcome", "sent"), ("worker", "reviewer"))
        assert samples[("mecha_worker_tasks_total", worker)] == 1234567
        done = (("outcome", "completed"), ("worker", "reviewer"))
        assert samples[("mecha_worker_tasks_total", done)] == 2**53 - 1
        assert types["mecha_worker_tasks"] == "counter"
        # seconds: 3 ms falls under le=0.005, 70 s only under +Inf
        assert types["mecha_dispatch_latency_seconds"] == "histogram"
        assert samples[("mecha_dispatch_latency_seconds_bucket", (("le", "0.002"),))] == 0
        assert samples[("mecha_dispatch_latency_seconds_bucket", (("le", "0.005"),))] == 2
        assert samples[("mecha_dispatch_latency_seconds_bucket", (("le", "60.0"),))] == 2
        assert samples[("mecha_dispatch_latency_seconds_bucket", (("le", "+Inf"),))] == 3
        assert samples[("mecha_dispatch_latency_seconds_count", ())] == 3
        assert samples[("mecha_dispatch_latency_seconds_sum", ())] == 70.006
        reviewer = (("worker", "reviewer"),)
        assert types["mecha_worker_dispatch_latency_seconds"] == "summary"
        assert samples[("mecha_worker_dispatch_latency_seconds_count", reviewer)] == 1
        assert samples[("mecha_worker_dispatch_latency_seconds_sum", reviewer)] == 0.25
        assert samples[("mecha_worker_queue_depth", (("worker", "reviewer"),))] == 4
        assert samples[("mecha_worker_tasks_in_flight", (("worker", "reviewer"),))] == 1
        limit = (("budget", "global"), ("state", "limit"), ("worker", ""))
        assert samples[("mecha_budget_tokens", limit)] == 1_000_000
        assert not any("_ms" in name for name, _ in samples), "durations are in seconds"
        # the process and the platform, from prometheus-client's collectors
        assert samples[("process_cpu_seconds_total", ())] > 0
        assert samples[("process_resident_memory_bytes", ())] > 0
        assert types["python_info"] in ("gauge", "info")
        assert ("mecha_build_info", (("version", __import__("mecha").__version__),)) in samples


def test_the_counters_have_no_name_an_openmetrics_parser_calls_clashing() -> None:
    """The old page's ``mecha_webhooks_received`` next to ``mecha_writes_total`` made the
    OpenMetrics parser stop; every family here is distinct once suffixes are taken off."""
    opened, _ = Scrapes.made().render(Figures(dispatch=dict.fromkeys(DISPATCH, 1)), OPENMETRICS)
    types, _ = parsed(opened.decode(), openmetrics=True)  # raises on a clash
    assert types["mecha_webhooks_received"] == "counter" and types["mecha_writes"] == "counter"


def test_workers_past_the_cap_are_summed_under_other_and_the_labels_stick() -> None:
    by_worker = WorkerFigures()
    for number, name in enumerate(("w1", "w2", "w3", "w4", "w5"), start=1):
        by_worker.count(name, "completed", number)
        by_worker.observe(name, 3)
    load = {name: (1, 1) for name in ("w1", "w2", "w3", "w4", "w5")}
    lines = [budget(name, "tasks_per_hour", 1, 10) for name in ("w1", "w2", "w3", "w4", "w5")]
    scrapes = Scrapes.made(MechaCollector(max_workers=3))
    figures = Figures(by_worker=by_worker, load=load, budgets=lines)
    for _, samples in both(scrapes, figures):
        done = {
            dict(labels)["worker"]: value for (name, labels), value in samples.items()
            if name == "mecha_worker_tasks_total" and dict(labels)["outcome"] == "completed"
        }  # fmt: skip
        assert done == {"w1": 1, "w2": 2, "w3": 3, OTHER: 4 + 5}
        assert samples[("mecha_worker_queue_depth", (("worker", OTHER),))] == 2
        other = (("worker", OTHER),)
        assert samples[("mecha_worker_dispatch_latency_seconds_count", other)] == 2
        assert samples[("mecha_worker_dispatch_latency_seconds_sum", other)] == 0.006
        used = (("budget", "worker"), ("state", "used"), ("worker", OTHER))
        assert samples[("mecha_budget_tasks", used)] == 2
        no_limit = (("budget", "worker"), ("state", "limit"), ("worker", OTHER))
        assert no_limit not in {labels for _, labels in samples}, "limits are not summed"
    # a worker first seen later, whose name sorts first, joins the others: w1..w3 keep
    # their labels, so no series changes meaning between scrapes
    by_worker.count("a0", "completed", 100)
    _, samples = both(scrapes, Figures(by_worker=by_worker))[0]
    done = {
        dict(labels)["worker"]: value for (name, labels), value in samples.items()
        if name == "mecha_worker_tasks_total" and dict(labels)["outcome"] == "completed"
    }  # fmt: skip
    assert done == {"w1": 1, "w2": 2, "w3": 3, OTHER: 4 + 5 + 100}


def app_request(**state: Any) -> Request:
    headers = state.pop("headers", {})
    fields = {
        "api_closed": False, "pipeline": SimpleNamespace(stored=3, matched=3),
        "dispatch_stats": None, "dispatch_latency": None, "worker_figures": None,
        "worker_load": None, "budget_limits": None, **state,
    }  # fmt: skip
    app = SimpleNamespace(state=SimpleNamespace(mecha=SimpleNamespace(**fields)))
    return cast(Request, SimpleNamespace(app=app, headers=headers))


def test_the_route_negotiates_and_keeps_its_registry() -> None:
    request = app_request(dispatch_stats=lambda: {"writes_capped": 2})
    classic = asyncio.run(metrics(request))
    assert classic.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = bytes(classic.body).decode()
    assert "# TYPE mecha_comments_capped_total counter\nmecha_comments_capped_total 2.0\n" in text
    scrapes = request.app.state.metrics
    cast(Any, request).headers = {"accept": PROMETHEUS_ACCEPT}
    opened = asyncio.run(metrics(request))
    assert opened.headers["content-type"].startswith(f"{OPENMETRICS}; version=1.0.0")
    assert bytes(opened.body).decode().endswith("# EOF\n")
    assert request.app.state.metrics is scrapes, "one registry per app, not one per scrape"


def test_a_closed_api_answers_403() -> None:
    answer = asyncio.run(metrics(app_request(api_closed=True)))
    assert answer.status_code == 403
    assert b"mecha_" not in bytes(answer.body)
