"""The tasks list (state and worker filters, keyset pages) and a task's own page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mecha.errors import EventNotFound, TaskNotFound
from mecha.server.api import store_call
from mecha.server.ui.access import Page, page, refused_page
from mecha.server.ui.event_pages import CANCELLABLE, RETRYABLE, UNREADABLE
from mecha.server.ui.filters import PAGE_SIZE, cursor_text, task_filters
from mecha.server.ui.render import render
from mecha.server.ui.views import decisions, event_label, tone, write_link, write_summary
from mecha.task import TaskState


@page
async def tasks(request: Request, current: Page) -> Response:
    """``GET /ui/tasks``: newest first, PAGE_SIZE a page."""
    state = current.state
    task_state, worker, filters = task_filters(request.query_params)
    found = await store_call(
        state, state.store.list_tasks, state=task_state, worker=worker or None,
        limit=PAGE_SIZE + 1, before=filters.before,
    )  # fmt: skip
    workers = await store_call(state, state.store.list_workers)
    if isinstance(found, Response) or isinstance(workers, Response):
        return refused_page(state, 503, *UNREADABLE)
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    older = cursor_text(found[-1].created_at, found[-1].id) if more else ""
    context = current.context(
        tasks=found, filters=filters, older=older, first=filters.before is None,
        states=[s.value for s in TaskState], worker_names=[w.name for w in workers],
        tone=tone, live="list", title="Tasks",
    )  # fmt: skip
    return render(state.redactor, "tasks.html", context)


@page
async def task(request: Request, current: Page) -> Response:
    """``GET /ui/tasks/{id}``: prompt, result, policy decisions, writes, timeline."""
    state = current.state
    try:
        found = await store_call(state, state.store.get_task, request.path_params["task_id"])
    except TaskNotFound as exc:
        return refused_page(state, 404, exc.message, "Find it on the tasks page.")
    if isinstance(found, Response):
        return refused_page(state, 503, *UNREADABLE)
    steps = await store_call(state, state.store.list_timeline, task_id=found.id)
    writes = await store_call(state, state.store.list_writes, task_id=found.id)
    if isinstance(steps, Response) or isinstance(writes, Response):
        return refused_page(state, 503, *UNREADABLE)
    label = ""
    if found.event_id:
        try:
            event = await store_call(state, state.store.get_event, found.event_id)
            label = event_label(event) if not isinstance(event, Response) else ""
        except EventNotFound:  # pruned
            label = ""
    context = current.context(
        task=found, steps=steps, policy=decisions(steps), label=label,
        writes=[(w, write_link(w, state.forge_web), write_summary(w)) for w in writes],
        tone=tone, live=f"task:{found.id}", title=f"Task {found.id[:8]}",
        retryable=found.state in RETRYABLE, cancellable=found.state in CANCELLABLE,
    )  # fmt: skip
    return render(state.redactor, "task.html", context)
