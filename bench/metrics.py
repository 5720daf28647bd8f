"""What a /metrics scrape costs the server: milliseconds per scrape with ``--workers``
workers (default 50), each with task counts, a queue and a latency histogram.

Calls the route itself (no HTTP: the loopback round trip is the same for every route) over
an app state holding the figures a busy serve keeps, in the classic text format and in
OpenMetrics, and prints p50 / p95 / max and the page's size. The budgets' lines are left
out: they are one store read, the same before and after.

Run: ``.venv/bin/python bench/metrics.py`` (``--workers 50 --rounds 500``). To compare with
another checkout, put its ``src`` first: ``PYTHONPATH=/other/src .venv/bin/python
bench/metrics.py`` (a version without per-worker series ignores those figures).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from types import SimpleNamespace
from typing import Any, cast

from starlette.requests import Request

from mecha.engine.histogram import Histogram
from mecha.server.metrics import metrics

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
#: every figure ``AppState.dispatch_stats`` gives a serve with write-back and schedules
DISPATCH = (
    "tasks_sent", "tasks_completed", "tasks_failed", "tasks_retried", "tasks_dead_lettered",
    "tasks_superseded", "tasks_recovered", "tasks_held", "tasks_queued", "tasks_in_flight",
    "writes_written", "writes_failed", "writes_retried", "writes_dead_lettered",
    "writes_dry_run", "writes_denied", "writes_capped", "writes_in_flight", "ticks",
    "ticks_skipped", "ticks_dropped", "tasks_budget_waits", "tasks_budget_failed",
    "tasks_budget_waiting", "budget_tokens_reserved", "budget_tokens_used",
)  # fmt: skip


def busy_state(workers: int) -> SimpleNamespace:
    """An app state as a serve that sent a million tasks to ``workers`` workers has it."""
    latency = Histogram()
    by_worker: Any = None
    try:
        from mecha.engine.worker_figures import WorkerFigures

        by_worker = WorkerFigures()
    except ImportError:  # a version before per-worker figures
        pass
    for number in range(workers):
        name = f"worker-{number:03d}"
        for ms in (3, 40, 700, 12_000):
            latency.observe(ms)
            if by_worker is not None:
                by_worker.observe(name, ms)
        if by_worker is not None:
            for outcome in ("sent", "completed", "failed", "retried", "dead_lettered"):
                by_worker.count(name, outcome, 20_000 + number)
    load = {f"worker-{number:03d}": (number % 5, number % 2) for number in range(workers)}
    return SimpleNamespace(
        api_closed=False, pipeline=SimpleNamespace(stored=1_234_567, matched=1_000_000),
        dispatch_stats=lambda: {key: 1_000_000 + i for i, key in enumerate(DISPATCH)},
        dispatch_latency=lambda: latency,
        worker_figures=(lambda: by_worker) if by_worker is not None else None,
        worker_load=lambda: load, budget_limits=None,
    )  # fmt: skip


async def scrape(app: SimpleNamespace, accept: str) -> tuple[float, int]:
    """One scrape: milliseconds taken and the page's bytes."""
    request = cast(Request, SimpleNamespace(app=app, headers={"accept": accept}))
    start = time.perf_counter()
    answer = await metrics(request)
    took = (time.perf_counter() - start) * 1000
    assert answer.status_code == 200
    return took, len(bytes(answer.body))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    app = SimpleNamespace(state=SimpleNamespace(mecha=busy_state(args.workers)))
    for label, accept in (("classic text", ""), ("OpenMetrics", OPENMETRICS)):
        await scrape(app, accept)  # the registry is made on the first scrape
        times = []
        for _ in range(args.rounds):
            took, size = await scrape(app, accept)
            times.append(took)
        times.sort()
        p95 = times[int(len(times) * 0.95) - 1]
        print(
            f"{label:>12}: {args.workers} workers, {size:,} bytes, p50 "
            f"{statistics.median(times):.2f} ms, p95 {p95:.2f} ms, max {times[-1]:.2f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
