"""The OpenTelemetry adapter (``mecha.app.tracing_otel``) under the engine, with the SDK's
InMemorySpanExporter: a delivery's span (as the webhook route makes it), kept with the
event as ``traceparent``, is the parent of its match and of each attempt of its task,
which holds the send and the policy; each write is a child of the attempt that planned it;
one trace throughout. Which OTEL_* settings turn tracing on, and what is refused."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mecha.app import tracing_otel
from mecha.app.tracing_otel import OtelTracing
from mecha.engine import tracing
from mecha.errors import ConfigError
from mecha.forges.writer import Done
from mecha.policy.writes import Write
from mecha.result import Comment, TaskResult
from mecha.store import Store
from mecha.testing.memory_store import MemoryStore
from tests.unit.engine.fakes import Worker, definition, delivery, eventually, register, transient
from tests.unit.engine.rig import Rig

ANSWER = TaskResult(output="fine", comment=Comment(body="Looks fine."))
POLICY = {"comment": {"allow": True}}


class Writer:
    """A forge writer that writes nothing and says it did."""

    def __init__(self) -> None:
        self.written: list[Write] = []

    async def write(self, write: Write, *, uncertain: bool = False) -> Done:
        self.written.append(write)
        return Done(detail="comment 1 created", remote_id="1")

    def preview(self, write: Write) -> str:
        return "POST /comments"

    async def identity(self) -> str:
        return "mecha-bot"


@pytest.fixture
def store() -> Iterator[Store]:
    opened = MemoryStore()
    yield opened
    opened.close()


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Spans made by the process's tracer, kept in memory; tracing off again after."""
    exporter = InMemorySpanExporter()
    installed = OtelTracing.install(exporter, batch=False)
    yield exporter
    installed.close()
    assert tracing.tracer is tracing.OFF


def _through(store: Store, home: Path, worker: Worker) -> tuple[str, Writer]:
    """A traced delivery through the engine to its write; the event's id."""
    register(store, definition("reviewer", policy=POLICY))
    writer = Writer()

    async def main() -> str:
        async with Rig(store, home, send=worker.send, writers={"github": writer}) as rig:
            with tracing.tracer.span("mecha.delivery") as span:  # as the webhook route does
                traced = delivery(traceparent=span.traceparent)
                event = await rig.pipeline.receive(traced)
            assert event is not None
            await eventually(lambda: writer.written or None, "the comment written")
            await eventually(
                lambda: (
                    all(w.state.value == "done" for w in store.list_writes(event_id=event.id))
                    or None
                ),
                "the write recorded",
            )
            return event.id

    return asyncio.run(main()), writer


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def _parent(span: ReadableSpan) -> int:
    return span.parent.span_id if span.parent is not None else 0


def test_one_trace_from_delivery_to_write(
    exported: InMemorySpanExporter, store: Store, user_home: Path
) -> None:
    event_id, _ = _through(store, user_home, Worker(ANSWER))
    spans = exported.get_finished_spans()
    assert sorted(span.name for span in spans) == sorted(
        ["mecha.delivery", "mecha.match", "mecha.task", "mecha.send", "mecha.policy", "mecha.write"]
    )
    one = {span.name: span for span in spans}
    assert {span.context.trace_id for span in spans} == {one["mecha.delivery"].context.trace_id}
    delivery_id, task_id = one["mecha.delivery"].context.span_id, one["mecha.task"].context.span_id
    assert _parent(one["mecha.delivery"]) == 0
    assert _parent(one["mecha.match"]) == delivery_id
    assert _parent(one["mecha.task"]) == delivery_id
    assert [_parent(one[n]) for n in ("mecha.send", "mecha.policy", "mecha.write")] == [task_id] * 3
    (task,) = store.list_tasks(event_id=event_id)
    assert dict(one["mecha.task"].attributes or {}) == {
        "mecha.task.id": task.id, "mecha.worker": "reviewer", "mecha.event.id": event_id,
        "mecha.task.retry": False,
    }  # fmt: skip
    assert dict(one["mecha.match"].attributes or {}) == {
        "mecha.event.id": event_id,
        "mecha.event.state": "matched",
    }
    assert (one["mecha.write"].attributes or {})["mecha.write.action"] == "comment"
    # the trace id on the event's timeline (its first entry, written by the store)
    trace = f"{one['mecha.delivery'].context.trace_id:032x}"
    received = store.list_timeline(event_id=event_id)[0]
    assert received.detail == f"github pull_request.opened from mona; trace {trace}"


def test_each_attempt_of_a_task_is_a_span_in_the_same_trace(
    exported: InMemorySpanExporter, store: Store, user_home: Path
) -> None:
    _through(store, user_home, Worker(transient(), ANSWER))
    spans = exported.get_finished_spans()
    tasks, sends = _named(spans, "mecha.task"), _named(spans, "mecha.send")
    assert [(s.attributes or {})["mecha.task.retry"] for s in tasks] == [True, False]
    assert [(s.attributes or {})["mecha.task.attempt"] for s in sends] == [1, 2]
    assert [s.status.is_ok for s in sends] == [False, True]  # the 503 is the first's error
    assert [_parent(s) for s in sends] == [t.context.span_id for t in tasks]
    assert len({span.context.trace_id for span in spans}) == 1


def test_tracing_off_makes_no_span(store: Store, user_home: Path) -> None:
    exporter = InMemorySpanExporter()
    OtelTracing.install(exporter, batch=False).close()  # installed, then off again
    assert tracing.tracer is tracing.OFF
    event_id, writer = _through(store, user_home, Worker(ANSWER))
    assert writer.written and exporter.get_finished_spans() == ()
    assert tracing.OFF.span("mecha.task", parent="x") is tracing.OFF  # nothing made per call
    assert tracing.OFF.traceparent == ""
    assert "trace" not in store.list_timeline(event_id=event_id)[0].detail


@pytest.mark.parametrize(
    ("environ", "exporter"),
    [
        ({}, ""),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ""),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ""),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, ""),
    ],
)
def test_which_settings_turn_tracing_on(environ: dict[str, str], exporter: str) -> None:
    assert tracing_otel.wanted(environ) == exporter


def test_an_exporter_mecha_cannot_use_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as refused:
        tracing_otel.wanted({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert str(refused.value) == (
        "OTEL_TRACES_EXPORTER='zipkin' is not an exporter Mecha can use\n"
        "  hint: set it to one of: otlp, console, none"
    )


def test_tracing_asked_for_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenTelemetry made unimportable (as without the [otel] extra): a ConfigError."""
    for name in [name for name in sys.modules if name.split(".")[0] == "opentelemetry"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    for environ in ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
                    {"OTEL_TRACES_EXPORTER": "console"}):  # fmt: skip
        with pytest.raises(ConfigError) as refused:
            tracing_otel.start(environ)
        assert str(refused.value).startswith(
            "tracing is asked for (OTEL_* variables) but OpenTelemetry is not installed"
        )
        assert "pip install 'mecha-engine[otel]'" in str(refused.value)
    assert tracing.tracer is tracing.OFF


def test_a_traceparent_that_is_not_one_starts_a_trace_of_its_own(
    exported: InMemorySpanExporter,
) -> None:
    for parent in ("garbage", "00-" + "0" * 31 + "-" + "1" * 16 + "-01"):
        with tracing.tracer.span("mecha.task", parent=parent):
            pass
    assert [_parent(span) for span in exported.get_finished_spans()] == [0, 0]


def test_only_the_adapter_names_opentelemetry() -> None:
    """The engine, the route and the rest know the seam (``mecha.engine.tracing``) only."""
    src = Path(tracing_otel.__file__).parent.parent
    naming = sorted(
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if re.search(r"^\s*(from|import) opentelemetry", path.read_text(encoding="utf-8"), re.M)
    )
    assert naming == ["app/tracing_otel.py"]


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({}, "mecha"),
        ({"OTEL_SERVICE_NAME": "mecha-eu"}, "mecha-eu"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=review-bot,deployment.environment=prod"},
         "review-bot"),
    ],
)  # fmt: skip
def test_the_service_is_named_by_the_environment_else_mecha(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], name: str
) -> None:
    for variable in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    exporter = InMemorySpanExporter()
    installed = OtelTracing.install(exporter, batch=False)
    try:
        with tracing.tracer.span("mecha.delivery"):
            pass
    finally:
        installed.close()
    (span,) = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == name


def test_a_delivery_not_sampled_names_no_trace_and_its_steps_follow(
    monkeypatch: pytest.MonkeyPatch, store: Store, user_home: Path
) -> None:
    """OTEL_TRACES_SAMPLER=always_off (as a ratio's unlucky draw): no span is exported,
    the task follows its delivery's choice, the timeline names no trace to look for."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    exporter = InMemorySpanExporter()
    installed = OtelTracing.install(exporter, batch=False)
    try:
        event_id, writer = _through(store, user_home, Worker(ANSWER))
    finally:
        installed.close()
    assert writer.written and exporter.get_finished_spans() == ()
    (task,) = store.list_tasks(event_id=event_id)
    flags = int(task.context["traceparent"][-2:], 16)
    assert flags & 1 == 0  # kept, not sampled: its steps are not sampled either
    received = store.list_timeline(event_id=event_id)[0]
    assert received.detail == "github pull_request.opened from mona"
