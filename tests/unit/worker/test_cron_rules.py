"""``source: cron`` rules in a worker file: what they take, and the mistakes named."""

from __future__ import annotations

from mecha.worker.parser import parse_worker
from mecha.yaml_doc import load_yaml
from tests.unit.worker.test_worker import MANAGED, only


def rule(body: str) -> str:
    return MANAGED + "events:\n  - source: cron\n    prompt: p\n" + body


def test_a_cron_rule_is_a_tick_with_its_schedule_as_subject_by_default() -> None:
    text = rule('    schedule: "0 9 * * 1-5"\n')
    spec = parse_worker(load_yaml(text, file="w.yml"), environ={}).spec
    [cron] = spec.events
    assert (cron.on, cron.subject, cron.overlap, cron.catch_up) == (
        ["tick"], "0 9 * * 1-5", "skip", False
    )  # fmt: skip


def test_its_keys_as_written() -> None:
    body = ('    schedule: "@every 10m"\n    subject: nightly-triage\n    tz: Europe/Paris\n'
            "    overlap: queue\n    catch_up: true\n    on: [tick]\n")  # fmt: skip
    spec = parse_worker(load_yaml(rule(body), file="w.yml"), environ={}).spec
    [cron] = spec.events
    assert (cron.schedule, cron.subject, cron.tz, cron.overlap, cron.catch_up) == (
        "@every 10m", "nightly-triage", "Europe/Paris", "queue", True
    )  # fmt: skip


def test_a_cron_rule_needs_a_schedule() -> None:
    assert "a source: cron rule needs schedule:" in only(rule(""))


def test_a_bad_schedule_is_named_with_its_place() -> None:
    found = only(rule('    schedule: "0 25 * * *"\n'))
    assert found.startswith('w.yml:5:5: events[0]: schedule: the hour field "25" is out of range')


def test_a_bad_zone_is_named() -> None:
    found = only(rule('    schedule: "@daily"\n    tz: Mars/Olympus\n'))
    assert '"Mars/Olympus" is not a known time zone' in found


def test_a_cron_rule_takes_only_ticks() -> None:
    found = only(rule('    schedule: "@daily"\n    on: [push]\n'))
    assert "takes only on: [tick]" in found


def test_overlap_is_skip_or_queue() -> None:
    found = only(rule('    schedule: "@daily"\n    overlap: wait\n'))
    assert "events[0].overlap" in found and "skip" in found and "queue" in found


def test_schedule_keys_belong_to_cron_rules() -> None:
    text = MANAGED + "events:\n  - {source: github, on: [push], prompt: p, schedule: '@daily'}\n"
    assert "schedule: is for source: cron rules" in only(text)


def test_two_cron_rules_need_two_subjects() -> None:
    body = (
        '    schedule: "@daily"\n'
        '  - {source: cron, schedule: "@hourly", subject: "@daily", prompt: q}\n'
    )
    found = only(rule(body))
    assert 'two cron rules have the subject "@daily" (rules 1 and 2)' in found
    assert found.startswith("w.yml:8:")
