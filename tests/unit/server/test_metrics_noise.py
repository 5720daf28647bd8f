"""/metrics shows write-back's count of comments held back by policy.comment.max_per_hour
(``WriteBack.stats()["writes_capped"]``, merged into the dispatch figures by serve)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from starlette.requests import Request

from mecha.server.metrics import metrics


def test_capped_comments_are_a_counter_in_metrics() -> None:
    state = SimpleNamespace(
        api_closed=False, pipeline=SimpleNamespace(stored=3, matched=3),
        dispatch_stats=lambda: {"writes_capped": 2, "writes_written": 10},
        dispatch_latency=None, budget_limits=None,
    )  # fmt: skip
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(mecha=state)))
    answer = asyncio.run(metrics(cast(Request, request)))
    text = bytes(answer.body).decode()
    assert "# TYPE mecha_comments_capped_total counter\nmecha_comments_capped_total 2\n" in text
    assert "# HELP mecha_comments_capped_total Comments over policy.comment.max_per_hour" in text
