"""``MechaCollector``: the figures the server already keeps, as prometheus-client metric
families at scrape time (the engine keeps its own counts; nothing here counts anything).

Counters are given their ``_total`` by the library (a family is named without it, its
sample with it); durations are seconds (the engine's histograms are in milliseconds and
are converted here, bucket bounds included). Worker-labelled series name at most
``MAX_WORKER_LABELS`` workers, the first seen since this server started; every later one
is summed under ``worker="_other"`` (a worker name cannot begin with ``_``). The labels
stick once given, so each series' counter only grows. docs/metrics.md has the list.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from mecha import __version__
from mecha.engine.histogram import Histogram
from mecha.engine.worker_figures import WorkerFigures
from mecha.server.models import BudgetLineJson

#: the most workers named in worker labels; the rest are summed under ``OTHER``
MAX_WORKER_LABELS = 100
OTHER = "_other"

#: a figure of ``dispatch_stats`` (dispatcher, write-back, ticker) → (metric, help, type);
#: a counter's name ends in ``_total`` here, and the library keeps it so on the samples
DISPATCH = {
    "tasks_sent": ("mecha_tasks_sent_total", "Task sends started", "counter"),
    "tasks_completed": ("mecha_tasks_completed_total", "Tasks completed", "counter"),
    "tasks_failed": ("mecha_tasks_failed_total", "Tasks failed for good", "counter"),
    "tasks_retried": (
        "mecha_tasks_retried_total", "Transient failures sent again later", "counter"
    ),
    "tasks_dead_lettered": (
        "mecha_tasks_dead_lettered_total", "Tasks failed after their last retry", "counter"
    ),
    "tasks_superseded": (
        "mecha_tasks_superseded_total",
        "Tasks a newer event for their flow key replaced (waiting, or running: answer dropped)",
        "counter",
    ),
    "tasks_recovered": ("mecha_tasks_recovered_total", "In-flight tasks requeued", "counter"),
    "tasks_held": (
        "mecha_tasks_held_total", "Claims held back by a worker's limits across nodes", "counter"
    ),
    "tasks_queued": ("mecha_queue_depth", "Tasks waiting in worker queues", "gauge"),
    "tasks_in_flight": ("mecha_tasks_in_flight", "Tasks being sent now", "gauge"),
    "writes_written": ("mecha_writes_total", "Writes that reached the forge", "counter"),
    "writes_failed": ("mecha_writes_failed_total", "Writes refused or dead-lettered", "counter"),
    "writes_retried": ("mecha_writes_retried_total", "Forge failures tried again", "counter"),
    "writes_dead_lettered": (
        "mecha_writes_dead_lettered_total", "Writes failed after their last try", "counter"
    ),
    "writes_dry_run": ("mecha_writes_dry_run_total", "Writes shown, not sent", "counter"),
    "writes_denied": ("mecha_policy_denied_total", "Actions the policy denied", "counter"),
    "writes_capped": (
        "mecha_comments_capped_total", "Comments over policy.comment.max_per_hour", "counter"
    ),
    "writes_in_flight": ("mecha_writes_in_flight", "Forge writes being made now", "gauge"),
    "ticks": ("mecha_cron_ticks_total", "Schedule ticks made (source: cron)", "counter"),
    "ticks_skipped": (
        "mecha_cron_ticks_skipped_total", "Ticks skipped: the last one still ran", "counter"
    ),
    "ticks_dropped": (
        "mecha_cron_ticks_dropped_total", "Ticks a clock jump passed over", "counter"
    ),
    "tasks_budget_waits": (
        "mecha_tasks_budget_waits_total", "Tasks held back by a budget (once each)", "counter"
    ),
    "tasks_budget_failed": (
        "mecha_tasks_budget_failed_total", "Tasks failed after their budget_wait", "counter"
    ),
    "tasks_budget_waiting": (
        "mecha_tasks_budget_waiting", "Tasks this node holds back on a budget", "gauge"
    ),
    "budget_tokens_reserved": (
        "mecha_budget_tokens_reserved_total", "Tokens reserved before sends", "counter"
    ),
    "budget_tokens_used": (
        "mecha_budget_tokens_settled_total", "Tokens sends settled at (use, else reservation)",
        "counter",
    ),
}  # fmt: skip
#: a budget window (``GET /budgets``' lines) → (metric name, help)
BUDGET = {
    "tokens_per_day": ("mecha_budget_tokens", "Tokens in the last 24 hours, by budget"),
    "tasks_per_hour": ("mecha_budget_tasks", "Sends in the last hour, by budget"),
}
#: the outcomes a worker's task counter is labelled with (``WorkerFigures.counts``' keys)
OUTCOMES = ("sent", "completed", "failed", "retried", "dead_lettered", "superseded", "held")
LATENCY = "From a task being stored (or due again) to its send starting"


@dataclass(frozen=True)
class Figures:
    """What one scrape shows, read from the app just before it."""

    #: deliveries stored and events matched (``Pipeline``)
    stored: int = 0
    matched: int = 0
    #: the dispatcher's, write-back's and the ticker's figures (``AppState.dispatch_stats``)
    dispatch: Mapping[str, int] = field(default_factory=dict)
    #: the dispatch latency histogram, milliseconds
    latency: Histogram | None = None
    #: counts and latencies by worker
    by_worker: WorkerFigures | None = None
    #: (queued, in flight) by worker
    load: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: the budgets' lines (``GET /budgets``)
    budgets: Sequence[BudgetLineJson] = ()


class MechaCollector(Collector):
    """Yields the families of ``figures`` (set before each scrape) on ``collect``."""

    def __init__(self, max_workers: int = MAX_WORKER_LABELS) -> None:
        self.figures = Figures()
        self.max_workers = max_workers
        #: workers given a label of their own, in the order first seen (never shrinks)
        self._named: dict[str, None] = {}

    def label(self, worker: str) -> str:
        """``worker``'s label value: its name while there is room, else ``OTHER``."""
        if worker in self._named:
            return worker
        if len(self._named) < self.max_workers:
            self._named[worker] = None
            return worker
        return OTHER

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        yield InfoMetricFamily("mecha_build", "The running Mecha", value={"version": __version__})
        yield CounterMetricFamily(
            "mecha_webhooks_received_total", "Webhook deliveries stored (duplicates included)",
            value=figures.stored,
        )  # fmt: skip
        yield CounterMetricFamily(
            "mecha_events_matched_total", "Events matched to workers", value=figures.matched
        )
        for key, (name, help_text, kind) in DISPATCH.items():
            if key in figures.dispatch:
                family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                yield family(name, help_text, value=figures.dispatch[key])
        if figures.latency is not None:
            latency = HistogramMetricFamily("mecha_dispatch_latency_seconds", LATENCY)
            latency.add_metric([], *_seconds(figures.latency))
            yield latency
        yield from self._by_worker(figures)
        yield from self._budgets(figures.budgets)

    def _by_worker(self, figures: Figures) -> Iterator[Metric]:
        """Each worker's task counts, queue, tasks in flight and latency."""
        by_worker = figures.by_worker or WorkerFigures()
        counts: dict[str, Counter[str]] = {}
        for worker, counted in by_worker.counts.items():
            counts.setdefault(self.label(worker), Counter()).update(counted)
        tasks = CounterMetricFamily(
            "mecha_worker_tasks_total", "Task sends and their outcomes, by worker",
            labels=("worker", "outcome"),
        )  # fmt: skip
        for worker, counted in counts.items():
            for outcome in OUTCOMES:
                tasks.add_metric([worker, outcome], counted[outcome])
        yield tasks
        load: dict[str, list[int]] = {}
        for worker, (queued, running) in figures.load.items():
            summed = load.setdefault(self.label(worker), [0, 0])
            summed[0] += queued
            summed[1] += running
        queue = GaugeMetricFamily(
            "mecha_worker_queue_depth", "Tasks waiting in the worker's queue", labels=("worker",)
        )
        flying = GaugeMetricFamily(
            "mecha_worker_tasks_in_flight", "The worker's tasks being sent now", labels=("worker",)
        )
        for worker, (queued, running) in load.items():
            queue.add_metric([worker], queued)
            flying.add_metric([worker], running)
        yield queue
        yield flying
        counts_of: dict[str, int] = {}
        seconds_of: dict[str, float] = {}
        for worker, waited in by_worker.latency.items():
            label = self.label(worker)
            counts_of[label] = counts_of.get(label, 0) + waited.count
            seconds_of[label] = seconds_of.get(label, 0.0) + waited.total / 1000
        # count and sum only (the buckets are in the unlabelled histogram): 2 samples a
        # worker, not 17, keep a scrape cheap (bench/metrics.py)
        latency = SummaryMetricFamily(
            "mecha_worker_dispatch_latency_seconds", f"{LATENCY}, by worker", labels=("worker",)
        )
        for worker, count in counts_of.items():
            latency.add_metric([worker], count, seconds_of[worker])
        yield latency

    def _budgets(self, lines: Iterable[BudgetLineJson]) -> Iterator[Metric]:
        """Each shown budget's windows: used, reserved and limit, and the tasks waiting."""
        values: dict[tuple[str, tuple[str, ...]], float] = {}
        for line in lines:
            worker = line["worker"]
            scope = ("worker", self.label(worker)) if worker else ("global", "")
            capped = scope[1] == OTHER
            name = BUDGET[line["window"]][0]
            for state, figure in (
                ("used", line["used"]), ("reserved", line["reserved"]), ("limit", line["limit"])
            ):  # fmt: skip
                if figure is not None and not (capped and state == "limit"):  # no sum of limits
                    key = (name, (*scope, state))
                    values[key] = values.get(key, 0) + figure
            key = ("mecha_budget_waiting", (*scope, line["window"]))
            values[key] = values.get(key, 0) + line["waiting"]
        helps = {**dict(BUDGET.values()), "mecha_budget_waiting": "Tasks waiting on a budget now"}
        families: dict[str, GaugeMetricFamily] = {}
        for (name, (budget, worker, last)), value in values.items():
            family = families.get(name)
            if family is None:
                last_label = "window" if name == "mecha_budget_waiting" else "state"
                family = families[name] = GaugeMetricFamily(
                    name, helps[name], labels=("budget", "worker", last_label)
                )
            family.add_metric([budget, worker, last], value)
        yield from families.values()


def _seconds(histogram: Histogram) -> tuple[list[tuple[str, float]], float]:
    """A millisecond histogram's cumulative buckets and sum, in seconds."""
    buckets = []
    running = 0
    for bound, counted in zip((*histogram.bounds, math.inf), histogram.counts, strict=True):
        running += counted
        buckets.append(("+Inf" if bound == math.inf else repr(bound / 1000), float(running)))
    return buckets, histogram.total / 1000
