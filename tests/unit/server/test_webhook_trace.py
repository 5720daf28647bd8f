"""The delivery's ``traceparent`` attribute is the trace's alone: set from the delivery's
span when traced, and never taken from outside (a generic source's payload field)."""

from __future__ import annotations

from mecha.server.webhooks import _traced

OURS = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


def test_a_traced_delivery_keeps_its_span() -> None:
    assert _traced({"number": 7}, OURS) == {"number": 7, "traceparent": OURS}


def test_a_payload_field_of_that_name_is_never_kept() -> None:
    sent = {"traceparent": "00-" + "f" * 32 + "-" + "e" * 16 + "-01", "level": "high"}
    assert _traced(sent, "") == {"level": "high"}  # tracing off
    assert _traced(sent, OURS) == {"level": "high", "traceparent": OURS}
