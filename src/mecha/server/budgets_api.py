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
from mecha.server.models import BudgetLineJson
from mecha.server.state import AppState, error_response


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
) -> list[BudgetLineJson] | Response:
    """The lines for ``limits``, times as RFC 3339 (a Response if the store cannot be read)."""
    now = time.time()
    uses = await store_call(state, state.store.budget_use, list(limits), now=now)
    if isinstance(uses, Response):
        return uses
    return [_line_json(line) for line in use_lines(limits, uses, now=now)]


def _line_json(line: Mapping[str, Any]) -> BudgetLineJson:
    """A line of ``use_lines`` as the API shows it."""
    frees = line["next_frees_at"]
    return {
        "worker": line["worker"], "window": line["window"],
        "window_start": timestamp(line["window_start"]),
        "window_end": timestamp(line["window_end"]),
        "used": line["used"], "reserved": line["reserved"], "limit": line["limit"],
        "left": line["left"], "in_flight": line["in_flight"], "waiting": line["waiting"],
        "next_frees_at": timestamp(frees) if frees is not None else None,
    }  # fmt: skip
