"""``GET /budgets``: what each budget has used in its sliding windows (``mecha.budget``).

One line per budget and window: a worker's (``worker``: its name) or config.yml's global
one (``worker``: null), over ``tokens_per_day`` (the last 24 hours) or ``tasks_per_hour``
(the last hour): ``used`` (settled), ``reserved`` (sends not settled yet), ``limit`` and
``left`` (null: no limit), tasks ``in_flight`` and ``waiting`` on it, the window's start
and end, and when its oldest use leaves it (``next_frees_at``). ``?worker=NAME`` keeps
one worker's lines. Shown: each worker with a budget of its own; with a global budget,
every worker and the global one. Needs the API key, like every API route.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mecha.budget import BudgetLimit, use_lines
from mecha.event import timestamp
from mecha.server.api import requires_key, store_call
from mecha.server.state import AppState, error_response

#: the fields of a line that are times (unix seconds in, RFC 3339 out)
TIMES = ("window_start", "window_end", "next_frees_at")


@requires_key
async def list_budgets(request: Request) -> Response:
    """Every shown budget's use per window, or one worker's (``?worker=``)."""
    state: AppState = request.app.state.mecha
    limits = dict(state.budget_limits()) if state.budget_limits is not None else {}
    wanted = request.query_params.get("worker")
    if wanted is not None:
        if wanted not in limits:
            return error_response(
                404, f'no budget applies to worker "{wanted}"',
                "give the worker a budget: section, or set budget: in config.yml",
            )  # fmt: skip
        limits = {wanted: limits[wanted]}
    lines = await budget_lines(state, limits)
    if isinstance(lines, Response):
        return lines
    return JSONResponse(lines)


async def budget_lines(
    state: AppState, limits: Mapping[str, BudgetLimit]
) -> list[dict[str, Any]] | Response:
    """The lines for ``limits``, times as RFC 3339 (a Response if the store cannot be read)."""
    now = time.time()
    uses = await store_call(state, state.store.budget_use, list(limits), now=now)
    if isinstance(uses, Response):
        return uses
    lines = use_lines(limits, uses, now=now)
    for line in lines:
        for key in TIMES:
            if line[key] is not None:
                line[key] = timestamp(line[key])
    return lines
