"""``flow:`` in a worker file: its keys as written, the defaults, the mistakes named."""

from __future__ import annotations

from mecha.worker.parser import parse_worker
from mecha.yaml_doc import load_yaml
from tests.unit.worker.test_worker import MANAGED, only

RULE = "events:\n  - source: github\n    on: [pull_request.opened]\n    prompt: p\n"


def worker(flow: str) -> str:
    return MANAGED + RULE + "flow:\n" + flow


def test_its_keys_as_written() -> None:
    text = worker('  key: "{{.repo}}#{{.number}}"\n  debounce: 30s\n  supersede: true\n')
    flow = parse_worker(load_yaml(text, file="w.yml"), environ={}).spec.flow
    assert flow is not None
    assert (flow.key, flow.debounce_seconds, flow.supersede) == ("{{.repo}}#{{.number}}", 30, True)


def test_no_debounce_and_no_supersede_by_default_and_no_flow_without_the_key() -> None:
    flow = parse_worker(load_yaml(worker("  key: '{{.subject}}'\n"), file="w.yml"), environ={})
    assert flow.spec.flow is not None
    assert (flow.spec.flow.debounce_seconds, flow.spec.flow.supersede) == (0, False)
    plain = parse_worker(load_yaml(MANAGED + RULE, file="w.yml"), environ={}).spec
    assert plain.flow is None


def test_a_flow_needs_a_key() -> None:
    assert '"key" is required under flow' in only(worker("  supersede: true\n"))


def test_a_broken_key_template_is_named_with_its_place() -> None:
    found = only(worker('  key: "{{.repo"\n'))
    assert found.startswith("w.yml:9:8: flow.key: template line 1: unclosed action"), found


def test_a_bad_or_too_long_debounce_is_named() -> None:
    assert "not a duration" in only(worker("  key: k\n  debounce: soon\n"))
    assert "out of range" in only(worker("  key: k\n  debounce: 2h\n"))
    assert '"-5s" is negative' in only(worker("  key: k\n  debounce: -5s\n"))


def test_an_unknown_flow_key_is_named() -> None:
    assert 'w.yml:10:3: unknown key "supercede" in flow' in only(
        worker("  key: k\n  supercede: true\n")
    )
