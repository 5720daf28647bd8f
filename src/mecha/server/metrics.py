"""``GET /metrics``: Prometheus metrics (``metrics_collector``), in OpenMetrics when the
``Accept`` header asks for ``application/openmetrics-text``, else the classic text format
0.0.4. Open without the API key like ``/health``, but 403 while the API is closed (a
non-loopback address without a key): the counts tell a stranger what the server does.

Each app has its own registry (never prometheus-client's global one): Mecha's collector,
and the library's process and platform collectors."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response

from mecha.server.budgets_api import budget_lines
from mecha.server.metrics_collector import Figures, MechaCollector
from mecha.server.models import BudgetLineJson
from mecha.server.state import AppState, closed_api


@dataclass(frozen=True)
class Scrapes:
    """An app's registry and the collector whose figures are set before each scrape."""

    registry: CollectorRegistry
    collector: MechaCollector

    @classmethod
    def made(cls, collector: MechaCollector | None = None) -> Scrapes:
        """A registry of ``collector`` (a new one if None), the process and the platform."""
        registry = CollectorRegistry()
        collector = collector if collector is not None else MechaCollector()
        registry.register(collector)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        return cls(registry, collector)

    def render(self, figures: Figures, accept: str) -> tuple[bytes, str]:
        """``figures`` in the format ``accept`` asks for, and its content type.

        Synchronous from setting the figures to the end of the rendering, so two scrapes on
        one event loop never see each other's figures."""
        encode, media = choose_encoder(accept)
        self.collector.figures = figures
        return encode(self.registry), media


async def metrics(request: Request) -> Response:
    """Counters, gauges and histograms since this server started, and the process."""
    state: AppState = request.app.state.mecha
    if (closed := closed_api(state)) is not None:
        return closed
    scrapes: Scrapes | None = getattr(request.app.state, "metrics", None)
    if scrapes is None:
        scrapes = request.app.state.metrics = Scrapes.made()
    figures = Figures(
        stored=state.pipeline.stored, matched=state.pipeline.matched,
        dispatch=state.dispatch_stats() if state.dispatch_stats is not None else {},
        latency=state.dispatch_latency() if state.dispatch_latency is not None else None,
        by_worker=state.worker_figures() if state.worker_figures is not None else None,
        load=state.worker_load() if state.worker_load is not None else {},
        budgets=await _budget_lines(state),
    )  # fmt: skip
    body, media = scrapes.render(figures, request.headers.get("accept", ""))
    return Response(body, media_type=media)


async def _budget_lines(state: AppState) -> list[BudgetLineJson]:
    """The shown budgets' lines; none if the store cannot be read (the rest still answers)."""
    if state.budget_limits is None:
        return []
    found = await budget_lines(state, state.budget_limits())
    return found if isinstance(found, list) else []
