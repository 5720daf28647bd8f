"""Spans around the pipeline's steps, behind a seam the engine owns.

The webhook route and the engine name this module only: ``tracer.span(name)`` around a
step, ``span.set(key, value)`` for what it was about. The composition root installs an
OpenTelemetry tracer (``mecha.app.tracing_otel``) when the standard ``OTEL_*`` variables
ask for one; otherwise ``tracer`` is ``OFF``, one shared object that is its own span, so a
step traced costs two method calls and allocates nothing, and nothing of OpenTelemetry
is imported.

A trace crosses the store: the delivery's span context is kept with the event as its
``traceparent`` attribute (W3C Trace Context), goes into its tasks' context, and is the
``parent`` of the match and task spans made later, on another thread or another node.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Protocol

#: the event attribute (and task context key) holding the delivery's span context
TRACEPARENT = "traceparent"
#: what a span attribute may hold
Value = str | int | float | bool

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


class Span(Protocol):
    """One step being traced."""

    @property
    def traceparent(self) -> str:
        """This span as a W3C ``traceparent`` value ("" when tracing is off)."""
        ...

    def set(self, key: str, value: Value) -> None:
        """Say something about the step (an id, a worker, an outcome)."""
        ...

    def fail(self, why: str) -> None:
        """Mark the step failed, saying why (an exception leaving the span does it too)."""
        ...


class Tracer(Protocol):
    """Makes spans; each is current (the parent of spans made inside it) while open."""

    def span(self, name: str, *, parent: str = "") -> AbstractContextManager[Span]:
        """A span named ``name``: a child of ``parent`` (a ``traceparent`` value, from
        another process step) if given, else of the span current here."""
        ...


class _Off:
    """Tracing off: the tracer, its context manager and its span in one shared object."""

    __slots__ = ()
    traceparent = ""

    def span(self, name: str, *, parent: str = "") -> _Off:
        return self

    def __enter__(self) -> _Off:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def set(self, key: str, value: Value) -> None:
        return None

    def fail(self, why: str) -> None:
        return None


OFF = _Off()
#: the process's tracer: OFF until the composition root installs another (``use``)
tracer: Tracer = OFF


def use(new: Tracer | None) -> None:
    """Make ``new`` the process's tracer (None: tracing off again)."""
    global tracer  # noqa: PLW0603 - the process's one tracer, set by the composition root
    tracer = new if new is not None else OFF


def trace_id(traceparent: object) -> str:
    """The trace id (32 hex digits) of a ``traceparent`` value; "" if it is not one."""
    if not isinstance(traceparent, str):
        return ""
    match = _TRACEPARENT.fullmatch(traceparent)
    return match[1] if match else ""
