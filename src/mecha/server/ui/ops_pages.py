"""The operator's pages: workers (with a managed worker's container log), failed and
dead-lettered writes, and the system (nodes, budgets, flow keys in flight)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from starlette.requests import Request
from starlette.responses import Response

from mecha.errors import MechaError, WorkerNotFound
from mecha.server.api import node_json, store_call
from mecha.server.budgets_api import budget_lines
from mecha.server.ui.access import Page, page, refused_page
from mecha.server.ui.event_pages import UNREADABLE
from mecha.server.ui.filters import PAGE_SIZE, Filters, cursor_text, read_cursor
from mecha.server.ui.render import render
from mecha.server.ui.views import tone, write_summary
from mecha.task import TaskState
from mecha.worker.kind import WorkerKind, WorkerState

log = logging.getLogger(__name__)

#: the window the workers page's figures cover (seconds)
RECENT = 3600
#: the log lines a managed worker's page shows
LOG_TAIL = 100
#: the worker states the start and stop buttons show for
BUTTONS = {
    "startable": frozenset({WorkerState.OFFLINE, WorkerState.ERROR}),
    "stoppable": frozenset({WorkerState.ONLINE, WorkerState.BUSY, WorkerState.ERROR}),
}


@page
async def workers(request: Request, current: Page) -> Response:
    """``GET /ui/workers``: each worker's kind, state, queue, in flight, latency, success."""
    state = current.state
    records = await store_call(state, state.store.list_workers)
    figures = await store_call(state, state.store.worker_figures, since=time.time() - RECENT)
    if isinstance(records, Response) or isinstance(figures, Response):
        return refused_page(state, 503, *UNREADABLE)
    context = current.context(
        workers=records, figures=figures, tone=tone, live="list", title="Workers", **BUTTONS,
    )  # fmt: skip
    return render(state.redactor, "workers.html", context)


@page
async def worker(request: Request, current: Page) -> Response:
    """``GET /ui/workers/{name}``: the figures, its own timeline, a managed container's log."""
    state = current.state
    try:
        record = await store_call(state, state.store.get_worker, request.path_params["name"])
    except WorkerNotFound as exc:
        return refused_page(state, 404, exc.message, "See the workers page.")
    if isinstance(record, Response):
        return refused_page(state, 503, *UNREADABLE)
    figures = await store_call(state, state.store.worker_figures, since=time.time() - RECENT)
    steps = await store_call(state, state.store.list_timeline, worker=record.name, limit=50)
    if isinstance(figures, Response) or isinstance(steps, Response):
        return refused_page(state, 503, *UNREADABLE)
    logs, log_error = "", ""
    if record.kind is WorkerKind.MANAGED and state.container_logs is not None:
        try:
            logs = await store_call(state, state.container_logs, record, LOG_TAIL)
        except MechaError as exc:
            log_error = exc.message
        except Exception as exc:  # the engine's own errors: shown, the page still answers
            log.warning("reading %s's container log failed: %s", record.name, exc)
            log_error = f"the container log could not be read: {exc}"
    context = current.context(
        worker=record, figure=figures.get(record.name), steps=steps, logs=logs,
        log_error=log_error, tone=tone, live="list", title=f"Worker {record.name}", **BUTTONS,
    )  # fmt: skip
    return render(state.redactor, "worker.html", context)


@page
async def writes(request: Request, current: Page) -> Response:
    """``GET /ui/writes``: failed and dead-lettered writes, newest first, to retry."""
    state = current.state
    filters = Filters()
    read_cursor(request.query_params.get("before", ""), filters)
    found = await store_call(
        state, state.store.failed_writes, limit=PAGE_SIZE + 1, before=filters.before
    )
    if isinstance(found, Response):
        return refused_page(state, 503, *UNREADABLE)
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    older = cursor_text(found[-1].updated_at, found[-1].key) if more else ""
    context = current.context(
        writes=[(w, write_summary(w)) for w in found], older=older, filters=filters,
        first=filters.before is None, tone=tone, live="list", title="Failed writes",
    )  # fmt: skip
    return render(state.redactor, "writes.html", context)


@page
async def system(request: Request, current: Page) -> Response:
    """``GET /ui/system``: nodes, budgets, and the flow keys with tasks in flight."""
    state = current.state
    now = time.time()
    nodes = await store_call(state, state.store.list_nodes)
    limits = dict(state.budget_limits()) if state.budget_limits is not None else {}
    budgets = await budget_lines(state, limits) if limits else []
    waiting = await store_call(state, state.store.list_tasks, state=TaskState.PENDING, limit=1000)
    running = await store_call(state, state.store.list_tasks, state=TaskState.RUNNING, limit=1000)
    if any(isinstance(part, Response) for part in (nodes, budgets, waiting, running)):
        return refused_page(state, 503, *UNREADABLE)
    keys: dict[tuple[str, str], list[str]] = defaultdict(list)
    for one in [*running, *waiting]:
        if one.flow_key:
            keys[(one.worker, one.flow_key)].append(one.state.value)
    stats = dict(state.dispatch_stats()) if state.dispatch_stats is not None else {}
    lease = stats.get("node_lease_ms", 30_000) / 1000
    context = current.context(
        nodes=[node_json(node, now=now, lease=lease) for node in nodes], budgets=budgets,
        flows=sorted(keys.items()), stats=sorted(stats.items()), tone=tone,
        live="list", title="System",
    )  # fmt: skip
    return render(state.redactor, "system.html", context)
