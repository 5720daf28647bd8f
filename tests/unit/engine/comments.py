"""Comment deliveries made from the forges' own recorded payloads (``mecha.samples``), with
the ids a test seeded in the forge emulator: GitHub issue comments, review comments and
reviews, GitLab notes. Each goes through the real webhook parser."""

from __future__ import annotations

import json
from typing import Any

from mecha.event import Delivery
from mecha.forges.github.webhook import parse_github
from mecha.forges.gitlab.webhook import parse_gitlab
from mecha.samples import load

#: the repository of the GitHub samples, its issue (#1) and its pull request (#2)
OWNER, REPO, ISSUE, PULL = "Codertocat", "Hello-World", 1, 2
PULL_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
PULL_BASE = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
#: the GitLab note sample's project and merge request
PROJECT, PROJECT_ID, MR = "gitlab-org/gitlab-test", 5, 1


def _github(payload: dict[str, Any], event: str, delivery: str) -> Delivery:
    headers = {k.lower(): v for k, v in load("github", "issue_comment.created").headers.items()}
    headers.update({"x-github-event": event, "x-github-delivery": delivery})
    return parse_github(json.dumps(payload).encode(), headers)


def _sender(payload: dict[str, Any], login: str) -> None:
    payload["sender"] = {**payload["sender"], "login": login, "type": "User"}


def issue_comment(comment_id: int, body: str, *, login: str = "mona",
                  association: str = "MEMBER", delivery: str = "") -> Delivery:  # fmt: skip
    """``issue_comment.created`` on issue #1."""
    payload = json.loads(load("github", "issue_comment.created").body)
    payload["comment"].update(id=comment_id, body=body, author_association=association)
    payload["comment"]["user"]["login"] = login
    _sender(payload, login)
    return _github(payload, "issue_comment", delivery or f"ic-{comment_id}")


def review_comment(comment_id: int, body: str, *, login: str = "mona",
                   association: str = "MEMBER") -> Delivery:  # fmt: skip
    """``pull_request_review_comment.created`` on pull request #2."""
    payload = json.loads(load("github", "pull_request.opened").body)
    payload["action"] = "created"
    payload["comment"] = {"id": comment_id, "body": body, "author_association": association,
                          "user": {"login": login, "type": "User"}}  # fmt: skip
    _sender(payload, login)
    return _github(payload, "pull_request_review_comment", f"rc-{comment_id}")


def review(review_id: int, node_id: str, body: str, *, login: str = "mona",
           association: str = "MEMBER") -> Delivery:  # fmt: skip
    """``pull_request_review.submitted`` on pull request #2."""
    payload = json.loads(load("github", "pull_request.opened").body)
    payload["action"] = "submitted"
    payload["review"] = {"id": review_id, "node_id": node_id, "body": body, "state": "commented",
                         "author_association": association,
                         "user": {"login": login, "type": "User"}}  # fmt: skip
    _sender(payload, login)
    return _github(payload, "pull_request_review", f"rv-{review_id}")


def note(
    note_id: int, body: str, *, author: str, author_id: int, action: str = "create"
) -> Delivery:
    """A GitLab ``Note Hook`` on merge request !1 of gitlab-org/gitlab-test by ``author``."""
    sample = load("gitlab", "note")
    payload = json.loads(sample.body)
    payload["object_attributes"].update(id=note_id, note=body, author_id=author_id,
                                        action=action)  # fmt: skip
    payload["user"].update(id=author_id, username=author)
    headers = {k.lower(): v for k, v in sample.headers.items()}
    headers["x-gitlab-event-uuid"] = f"note-{note_id}-{action}"
    headers["idempotency-key"] = f"note-{note_id}-{action}"
    return parse_gitlab(json.dumps(payload).encode(), headers)
