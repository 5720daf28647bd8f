"""Reading a /metrics page back with prometheus-client's own parsers (classic text and
OpenMetrics), for the tests that check what it shows."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as classic_families

OPENMETRICS = "application/openmetrics-text"
#: what Prometheus sends when it scrapes
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

#: a sample's value by (sample name, its labels sorted)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parsed(text: str, *, openmetrics: bool = False) -> tuple[dict[str, str], Samples]:
    """Each family's type by name, and each sample's value by (name, sorted labels)."""
    parse = openmetrics_families if openmetrics else classic_families
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in parse(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, samples


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with exactly ``labels`` on a classic page (None: absent)."""
    return parsed(text)[1].get((name, tuple(sorted(labels.items()))))
