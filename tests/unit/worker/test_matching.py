"""Matching: every worker's every rule, fan-out, wildcards, filters, held rules, reasons."""

from __future__ import annotations

from typing import Any

import pytest

from mecha.worker.matching import Candidate, Decision, Outcome, decide, wants_type
from mecha.worker.spec import EventRule


def rule(**fields: Any) -> EventRule:
    fields.setdefault("source", "github")
    fields.setdefault("on", ["pull_request.opened"])
    fields.setdefault("prompt", "review")
    return EventRule.model_validate(fields)


def one(
    rules: list[EventRule],
    *,
    type: str = "pull_request.opened",
    source: str = "github",
    **data: Any,
) -> Decision:
    [decision] = decide([Candidate(name="w", rules=rules)], source=source, type=type, data=data)
    return decision


@pytest.mark.parametrize(
    ("patterns", "type", "expected"),
    [
        (["pull_request.opened"], "pull_request.opened", True),
        (["pull_request.*"], "pull_request.synchronize", True),
        (["pull_request.*"], "pull_request", False),
        (["pull_request.*"], "pull_request_review.submitted", False),
        (["*"], "push", True),
        (["push"], "pull_request.opened", False),
        (["merge_request.open", "merge_request.update"], "merge_request.update", True),
    ],
)
def test_event_types_match_exactly_or_as_wildcards(
    patterns: list[str], type: str, expected: bool
) -> None:
    assert wants_type(patterns, type) is expected


def test_every_matching_worker_gets_the_event() -> None:
    candidates = [Candidate(name=n, rules=[rule()]) for n in ("a", "b", "c")]
    decisions = decide(candidates, source="github", type="pull_request.opened", data={})
    assert [(d.worker, d.outcome) for d in decisions] == [
        ("a", Outcome.MATCHED),
        ("b", Outcome.MATCHED),
        ("c", Outcome.MATCHED),
    ]


def test_the_first_matching_rule_decides() -> None:
    decision = one([rule(on=["push"]), rule(), rule(prompt="second")])
    assert (decision.outcome, decision.rule) == (Outcome.MATCHED, 1)


def test_a_rule_with_auto_false_holds_the_worker_without_running_it() -> None:
    decision = one([rule(auto=False)])
    assert decision.outcome is Outcome.HELD
    assert "auto: false" in decision.reason


def test_a_later_auto_rule_wins_over_an_earlier_held_one() -> None:
    decision = one([rule(auto=False), rule()])
    assert (decision.outcome, decision.rule) == (Outcome.MATCHED, 1)


def test_wrong_source_is_named_in_the_reason() -> None:
    decision = one([rule(source="gitlab")])
    assert decision.outcome is Outcome.NOT_MATCHED
    assert decision.reason == "rule 1: source is github, rule wants gitlab"


def test_wrong_type_is_named_in_the_reason() -> None:
    decision = one([rule()], type="push")
    assert decision.reason == "rule 1: type push is not in on: [pull_request.opened]"


def test_every_rule_that_missed_is_explained() -> None:
    decision = one([rule(source="gitlab"), rule(on=["push"])])
    assert decision.reason.startswith("rule 1: source")
    assert "; rule 2: type push" not in decision.reason
    assert "; rule 2: type pull_request.opened is not in on: [push]" in decision.reason


@pytest.mark.parametrize(
    ("wanted", "value", "matches"),
    [
        ("app", "app", True),
        ("app", "web", False),
        ("42", 42, True),
        ("true", True, True),
        ("false", True, False),
        ("<nil>", None, True),
        ("release/*", "release/1.2", True),
        ("release/*", "main", False),
        (["main", "develop"], "develop", True),
        (["main", "develop"], "feature", False),
        ("api-?", "api-1", True),
    ],
)
def test_filters_compare_like_upstream_and_accept_lists_and_globs(
    wanted: str | list[str], value: Any, matches: bool
) -> None:
    decision = one([rule(filter={"key": wanted})], key=value)
    assert (decision.outcome is Outcome.MATCHED) is matches


def test_a_missing_attribute_fails_the_filter_and_says_so() -> None:
    decision = one([rule(filter={"repo_name": "app"})])
    assert decision.reason == "rule 1: filter repo_name: wanted 'app', event has '<nil>'"


@pytest.mark.parametrize(
    ("wanted", "matches"),
    [("security", True), ("bug, security", True), ("sec*", True), ("ui", False), ("bug,", False)],
)
def test_a_label_filter_matches_any_single_label_or_the_whole_list(
    wanted: str, matches: bool
) -> None:
    decision = one([rule(filter={"labels": wanted})], labels="bug, security")
    assert (decision.outcome is Outcome.MATCHED) is matches


def test_a_worker_without_rules_never_matches() -> None:
    decision = one([])
    assert (decision.outcome, decision.reason) == (
        Outcome.NOT_MATCHED,
        "the worker has no event rules",
    )
