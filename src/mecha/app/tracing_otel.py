"""OpenTelemetry behind ``mecha.engine.tracing``, when the standard variables ask for it.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names ``otlp`` or ``console``, or, that unset,
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (OTLP
over HTTP, protobuf); ``OTEL_TRACES_EXPORTER=none`` or ``OTEL_SDK_DISABLED=true`` keep it
off. The SDK reads the rest itself (``OTEL_SERVICE_NAME``, default ``mecha``;
``OTEL_RESOURCE_ATTRIBUTES``; ``OTEL_EXPORTER_OTLP_HEADERS``; ``OTEL_BSP_*``). Nothing of
OpenTelemetry is imported unless tracing is on; on without the ``[otel]`` extra installed
is a ConfigError that says what to install.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from mecha.engine import tracing
from mecha.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import Tracer as OtelTracer

#: the exporters OTEL_TRACES_EXPORTER may name here
EXPORTERS = ("otlp", "console", "none")
#: the extra that installs OpenTelemetry
EXTRA_HINT = "install Mecha with its [otel] extra: pip install 'mecha-engine[otel]'"


def wanted(environ: Mapping[str, str]) -> str:
    """The exporter the environment asks for: ``otlp``, ``console``, or "" (tracing off).
    ConfigError for an exporter not in EXPORTERS."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ""
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        if named not in EXPORTERS:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={environ['OTEL_TRACES_EXPORTER']!r} is not an exporter "
                "Mecha can use",
                hint=f"set it to one of: {', '.join(EXPORTERS)}",
            )
        return "" if named == "none" else named
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return "otlp" if any(environ.get(name, "").strip() for name in endpoints) else ""


def start(environ: Mapping[str, str]) -> OtelTracing | None:
    """The environment's tracer installed as the process's, or None (tracing off)."""
    exporter = wanted(environ)
    if not exporter:
        return None
    try:
        if exporter == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return OtelTracing.install(ConsoleSpanExporter(), batch=False)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(
            f"tracing is asked for (OTEL_* variables) but OpenTelemetry is not installed "
            f"({exc.name} is missing)",
            hint=f"{EXTRA_HINT}, or unset OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_ENDPOINT",
        ) from None
    return OtelTracing.install(OTLPSpanExporter(), batch=True)


class OtelTracing:
    """An OpenTelemetry tracer provider made the process's tracer; ``close`` flushes it."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = Tracer(provider.get_tracer("mecha"))

    @classmethod
    def install(cls, exporter: SpanExporter, *, batch: bool = True) -> OtelTracing:
        """Spans to ``exporter`` (in batches from a thread of the SDK's, or each as it
        ends), made by ``mecha.engine.tracing.tracer`` from now on."""
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by Resource.create; a
        # service named by neither is "mecha" (not the SDK's "unknown_service:python")
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "mecha"}))
        provider = TracerProvider(resource=resource)
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        made = cls(provider)
        tracing.use(made.tracer)
        return made

    def close(self) -> None:
        """Export what is left and stop tracing."""
        tracing.use(None)
        self.provider.shutdown()


class Span:
    """``mecha.engine.tracing.Span`` over an OpenTelemetry span."""

    __slots__ = ("_span",)

    def __init__(self, span: OtelSpan) -> None:
        self._span = span

    @property
    def traceparent(self) -> str:
        from opentelemetry.trace import format_span_id, format_trace_id

        context = self._span.get_span_context()
        flags = f"{int(context.trace_flags):02x}"
        return f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-{flags}"

    def set(self, key: str, value: tracing.Value) -> None:
        self._span.set_attribute(key, value)

    def fail(self, why: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_status(Status(StatusCode.ERROR, why))


class Tracer:
    """``mecha.engine.tracing.Tracer`` over an OpenTelemetry tracer."""

    def __init__(self, tracer: OtelTracer) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._propagator = TraceContextTextMapPropagator()

    @contextlib.contextmanager
    def span(self, name: str, *, parent: str = "") -> Iterator[tracing.Span]:
        # a parent from another process step: a traceparent that is not one is ignored
        context = None
        if parent and tracing.trace_id(parent):
            context = self._propagator.extract({"traceparent": parent})
        with self._tracer.start_as_current_span(name, context=context) as span:
            yield Span(span)
