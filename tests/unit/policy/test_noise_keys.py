"""The policy keys that keep noise down: ``comment.max_per_hour`` (default 10) and
``reactions: {allow: true}`` (off unless written); and the 👀 write made for a command's
comment (``reaction_write``): what it goes on, per forge and event, and its stable key."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mecha.event import Event, EventState
from mecha.policy.gate import DEFAULT_MAX_PER_HOUR, PolicyKind, parse_policy
from mecha.policy.reactions import reaction_write
from mecha.policy.schema import policy_problems
from mecha.policy.writes import Write


def test_max_per_hour_defaults_to_ten_with_or_without_a_policy() -> None:
    assert DEFAULT_MAX_PER_HOUR == 10
    assert parse_policy(None).comment.max_per_hour == 10
    assert parse_policy({"labels": {"allow": True}}).comment.max_per_hour == 10
    assert parse_policy({"comment": {"allow": True, "max_per_hour": 3}}).comment.max_per_hour == 3


@pytest.mark.parametrize("value", [0, -1, 2.5, "10", True, None])
def test_a_cap_that_is_not_a_whole_number_above_zero_is_fatal(value: Any) -> None:
    policy = {"comment": {"allow": True, "max_per_hour": value}}
    (problem,) = policy_problems(policy)
    assert problem.fatal and problem.path == "policy.comment.max_per_hour"
    assert problem.message.startswith("expected a whole number above 0, got ")
    assert parse_policy(policy).kind is PolicyKind.INVALID


def test_reactions_are_off_unless_allowed() -> None:
    assert not parse_policy(None).reactions
    assert not parse_policy({"comment": {"allow": True}}).reactions
    assert not parse_policy({"reactions": {}}).reactions  # present without allow: false
    assert not parse_policy({"reactions": {"allow": False}}).reactions
    assert not parse_policy({"reactions": True}).reactions  # not a mapping: ignored
    assert parse_policy({"reactions": {"allow": True}}).reactions
    # an invalid policy reacts to nothing
    assert not parse_policy({"reactions": {"allow": True}, "dry_run": "yes"}).reactions
    (problem,) = policy_problems({"reactions": {"allow": "yes"}})
    assert problem.fatal and problem.path == "policy.reactions.allow"


def event(source: str, type: str, **attrs: Any) -> Event:
    github = {"repo_owner": "octo", "repo_name": "hello", "number": 7}
    gitlab = {"repo_owner": "group", "repo_name": "app", "number": 5, "project_id": 12}
    place = github if source == "github" else gitlab
    now = time.time()
    return Event(
        id="ev1", source=source, type=type, delivery_id="d1", actor="mona", subject="s",
        attrs={**place, **attrs}, raw=b"{}", headers={}, state=EventState.MATCHED,
        created_at=now, updated_at=now,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("source", "type", "attrs", "subject"),
    [
        ("github", "issue_comment.created", {"comment_id": 11}, "issue_comment:11"),
        ("github", "pull_request_review_comment.created", {"comment_id": 12},
         "review_comment:12"),
        ("github", "pull_request_review.submitted", {"comment_id": 13,
                                                      "comment_node_id": "PRR_kwDO"},
         "review:PRR_kwDO"),
        ("gitlab", "note", {"comment_id": 14, "noteable_type": "MergeRequest"}, "note:14"),
        ("gitlab", "note", {"comment_id": 15, "noteable_type": "Issue"}, "note:15"),
    ],
)  # fmt: skip
def test_the_reaction_goes_on_the_comment_that_carried_the_command(
    source: str, type: str, attrs: dict[str, Any], subject: str
) -> None:
    made = reaction_write(event(source, type, **attrs), worker="reviewer")
    assert isinstance(made, Write)
    assert (made.action, made.body, made.subject, made.worker) == (
        "reaction", "eyes", subject, "reviewer"
    )  # fmt: skip
    assert made.place.number in (5, 7)
    again = reaction_write(event(source, type, **attrs), worker="reviewer")
    assert isinstance(again, Write) and again.key == made.key  # a task sent again: same key
    other = reaction_write(event(source, type, **attrs), worker="triage")
    assert isinstance(other, Write) and other.key != made.key


@pytest.mark.parametrize(
    ("source", "type", "attrs", "why"),
    [
        ("github", "issue_comment.created", {}, "the payload has no comment.id"),
        ("github", "pull_request_review.submitted", {"comment_id": 3},
         "the payload has no review.node_id"),
        ("gitlab", "note", {"comment_id": 4, "noteable_type": "Commit"},
         "a GitLab note on a commit or snippet gets no award emoji from Mecha"),
        ("github", "pull_request.opened", {}, "the event is not a comment Mecha can react to"),
    ],
)  # fmt: skip
def test_no_reaction_without_a_comment_to_react_to(
    source: str, type: str, attrs: dict[str, Any], why: str
) -> None:
    assert reaction_write(event(source, type, **attrs), worker="w") == f"reaction: {why}"
