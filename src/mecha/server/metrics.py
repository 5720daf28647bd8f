"""``GET /metrics``: Prometheus text (upstream's names where they mean the same thing), open
without the API key like ``/health``, but 403 while the API is closed (a non-loopback
address without a key): the counts tell a stranger what the server does."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mecha.server.budgets_api import budget_lines
from mecha.server.state import AppState, closed_api

#: dispatcher figure → (metric name, help, type)
_DISPATCH = {
    "tasks_sent": ("mecha_tasks_sent_total", "Task sends started", "counter"),
    "tasks_completed": ("mecha_tasks_completed", "Tasks completed", "counter"),
    "tasks_failed": ("mecha_tasks_failed", "Tasks failed for good", "counter"),
    "tasks_retried": ("mecha_tasks_retried", "Transient failures sent again later", "counter"),
    "tasks_dead_lettered": (
        "mecha_tasks_dead_lettered_total", "Tasks failed after their last retry", "counter"
    ),
    "tasks_superseded": (
        "mecha_tasks_superseded_total",
        "Tasks a newer event for their flow key replaced (waiting, or running: answer dropped)",
        "counter",
    ),
    "tasks_recovered": ("mecha_tasks_recovered", "In-flight tasks requeued at start", "counter"),
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
#: a budget's window figure (``GET /budgets``' lines) → (metric name, help)
_BUDGET = {
    "tokens_per_day": ("mecha_budget_tokens", "Tokens in the last 24 hours, by budget"),
    "tasks_per_hour": ("mecha_budget_tasks", "Sends in the last hour, by budget"),
}


async def metrics(request: Request) -> Response:
    """Counters and gauges since this server started, and the dispatch latency histogram."""
    state: AppState = request.app.state.mecha
    if (closed := closed_api(state)) is not None:
        return closed
    lines: list[str] = []

    def put(name: str, help_text: str, kind: str, value: float) -> None:
        lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value:g}"))

    put("mecha_webhooks_received", "Webhook deliveries stored", "counter", state.pipeline.stored)
    put("mecha_events_matched", "Events matched to workers", "counter", state.pipeline.matched)
    figures = state.dispatch_stats() if state.dispatch_stats is not None else {}
    for key, (name, help_text, kind) in _DISPATCH.items():
        if key in figures:
            put(name, help_text, kind, figures[key])
    if state.dispatch_latency is not None:
        histogram = state.dispatch_latency()
        name = "mecha_dispatch_latency_ms"
        lines.append(f"# HELP {name} From a task being stored to its send starting")
        lines.append(f"# TYPE {name} histogram")
        lines.extend(f'{name}_bucket{{le="{le}"}} {count}' for le, count in histogram.cumulative())
        lines.append(f"{name}_sum {histogram.total:g}")
        lines.append(f"{name}_count {histogram.count}")
    if state.budget_limits is not None:
        lines.extend(await _budget_metrics(state))
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


async def _budget_metrics(state: AppState) -> list[str]:
    """Each shown budget's windows: used, reserved and limit, and the tasks waiting on it."""
    assert state.budget_limits is not None
    found = await budget_lines(state, state.budget_limits())
    if isinstance(found, Response) or not found:
        return []  # the store cannot be read now: the other metrics still answer
    series: dict[str, list[str]] = {}
    for line in found:
        worker = line["worker"]
        labels = f'budget="worker",worker="{worker}"' if worker else 'budget="global"'
        name = _BUDGET[line["window"]][0]
        for kind, value in (
            ("used", line["used"]), ("reserved", line["reserved"]), ("limit", line["limit"])
        ):  # fmt: skip
            if value is not None:
                series.setdefault(name, []).append(f'{name}{{{labels},state="{kind}"}} {value}')
        series.setdefault("mecha_budget_waiting", []).append(
            f'mecha_budget_waiting{{{labels},window="{line["window"]}"}} {line["waiting"]}'
        )
    out: list[str] = []
    helps = {**dict(_BUDGET.values()), "mecha_budget_waiting": "Tasks waiting on a budget now"}
    for name, rows in series.items():
        out.extend((f"# HELP {name} {helps[name]}", f"# TYPE {name} gauge", *rows))
    return out
