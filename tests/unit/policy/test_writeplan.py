"""Where a result is written, and why not: the reasons name the payload field that was missing.

Events are made by the real webhook parsers from payloads, as `mecha serve` makes them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mecha import samples
from mecha.event import Delivery, Event, EventState
from mecha.forges.github.webhook import parse_github
from mecha.forges.gitlab.webhook import parse_gitlab
from mecha.policy.gate import apply_policy, parse_policy
from mecha.policy.plan import Gap, plan_writes, writeback_gaps
from mecha.result import Comment, Status, TaskResult

RESULT = TaskResult(comment=Comment(body="Looks fine."), status=Status(state="success"))
GITHUB = {"x-github-event": "pull_request", "x-github-delivery": "d-1"}
GITLAB = {"x-gitlab-event": "Merge Request Hook", "x-gitlab-event-uuid": "d-1"}


def stored(delivery: Delivery) -> Event:
    return Event(
        id="ev1", source=delivery.source, type=delivery.type, delivery_id=delivery.delivery_id,
        actor=delivery.actor, subject=delivery.subject, attrs=delivery.attrs,
        state=EventState.MATCHED,
    )  # fmt: skip


def github(payload: dict[str, Any], event: str = "pull_request") -> Event:
    headers = {**GITHUB, "x-github-event": event}
    return stored(parse_github(json.dumps(payload).encode(), headers))


def gitlab(payload: dict[str, Any], event: str = "Merge Request Hook") -> Event:
    headers = {**GITLAB, "x-gitlab-event": event}
    return stored(parse_gitlab(json.dumps(payload).encode(), headers))


def skipped(event: Event | None) -> list[str]:
    verdict = apply_policy(parse_policy(None), RESULT, worker="w")
    return list(plan_writes(verdict, event=event, worker="w").skipped)


def sample_event(forge: str, name: str) -> Event:
    sample = samples.load(forge, name)
    headers = {key.lower(): value for key, value in sample.headers.items()}
    parse = parse_github if forge == "github" else parse_gitlab
    return stored(parse(sample.body, headers))


def test_a_pull_request_without_a_repository_names_repository_full_name() -> None:
    """The newcomer's hand-made payload: the reason says which field to add."""
    event = github({"action": "opened", "number": 1, "pull_request": {"title": "t"}})
    assert skipped(event) == [
        "comment: the payload has no repository.full_name, so there is no repository to write to",
        "status: the payload has no repository.full_name, so there is no repository to write to",
    ]


def test_a_merge_request_without_a_project_path_names_it() -> None:
    event = gitlab({"object_kind": "merge_request", "project": {"id": 3},
                    "object_attributes": {"iid": 5, "action": "open"}})  # fmt: skip
    assert skipped(event)[0] == (
        "comment: the payload has no project.path_with_namespace, so there is no repository "
        "to write to"
    )


def test_a_pull_request_without_number_or_head_names_both() -> None:
    repo = {"full_name": "octo/app"}
    event = github({"action": "opened", "pull_request": {"title": "t"}, "repository": repo})
    assert skipped(event) == [
        "comment: the payload has no pull_request.number, so there is no pull request or "
        "issue to write to",
        "status: the payload has no pull_request.head.sha, so there is no head commit to set "
        "a status on",
    ]


def test_a_note_on_a_merge_request_without_its_iid_names_merge_request_iid() -> None:
    event = gitlab(
        {"object_kind": "note", "project": {"id": 1, "path_with_namespace": "g/app"},
         "object_attributes": {"noteable_type": "MergeRequest", "note": "hi"},
         "merge_request": {"title": "t"}},
        event="Note Hook",
    )  # fmt: skip
    assert writeback_gaps(event.source, event.type, event.attrs) == (
        Gap("merge_request.iid", "a comment, labels or a suggestion"),
        Gap("merge_request.last_commit.id", "a commit status"),
    )


def test_a_push_needs_no_number_and_says_why_it_gets_no_comment() -> None:
    event = github({"ref": "refs/heads/main", "after": "a" * 40,
                    "repository": {"full_name": "octo/app"}}, event="push")  # fmt: skip
    assert writeback_gaps(event.source, event.type, event.attrs) == ()
    assert skipped(event) == [
        "comment: the event is not about a pull request, merge request or issue"
    ]


def test_generic_sources_and_api_tasks_have_no_forge() -> None:
    alert = Event(
        id="ev2", source="alerts", type="fired", delivery_id="d", actor="", subject="",
        attrs={"repo_name": "x"}, state=EventState.MATCHED,
    )  # fmt: skip
    assert skipped(alert)[0] == (
        'comment: an event from "alerts" has no forge to write to (only GitHub and GitLab '
        "events are written back)"
    )
    assert writeback_gaps("alerts", "fired", {}) == ()
    assert skipped(None)[0] == "comment: an API task has no forge to write to"


@pytest.mark.parametrize(
    ("forge", "name"),
    [(forge, name) for forge in samples.FORGES for name in samples.names(forge) if name != "ping"],
)
def test_every_shipped_sample_can_be_written_back(forge: str, name: str) -> None:
    """`mecha event send --sample` sends events whose results have somewhere to go."""
    event = sample_event(forge, name)
    assert writeback_gaps(event.source, event.type, event.attrs) == ()
    planned = plan_writes(
        apply_policy(parse_policy(None), RESULT, worker="w"), event=event, worker="w"
    )
    actions = [write.action for write in planned.writes]
    assert actions[:1] == (["status"] if name == "push" else ["comment"]), planned.skipped
