"""The GitHub emulator's pull request reviews: ``ReviewRoutes``, ``Review``, ``hunk_lines``.

* ``POST /repos/{o}/{r}/pulls/{n}/reviews``: 200 with the review. ``event`` is APPROVE,
  REQUEST_CHANGES or COMMENT (none: PENDING); ``body`` is required for the last two;
  ``commit_id`` must be the pull request's head. Each of ``comments[]`` needs ``path``
  and ``body`` and either ``line`` (with ``side``, and ``start_line``/``start_side`` for a
  range) or the older ``position``; the lines must be in the file's patch, a range inside
  one hunk, or the answer is GitHub's 422 ("... must be part of the diff").
* ``GET /repos/{o}/{r}/pulls/{n}/reviews``: oldest first, ``per_page`` ≤ 100, ``Link``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mecha.testing.forge.github.body import (
    body_json,
    check_fields,
    custom,
    invalid,
    now_text,
    user_json,
)
from mecha.testing.forge.github.emulator import GitHubState, github_error
from mecha.testing.forge.wire import Call, Reply, json_reply, link_header, paginate

if TYPE_CHECKING:
    from mecha.testing.forge.github.write import GitHubWrites

EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
SIDES = ("LEFT", "RIGHT")
_HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_REVIEW = "PullRequestReview"
_THREAD = "PullRequestReviewComment"
_COMMENT_REQUIRED = {"path": "string", "body": "string"}
_COMMENT_OPTIONAL = {
    "position": "integer",
    "line": "integer",
    "side": "string",
    "start_line": "integer",
    "start_side": "string",
}


@dataclass
class Review:
    """A pull request review and its line comments (as they were sent)."""

    id: int
    owner: str
    repo: str
    number: int
    login: str
    body: str
    #: APPROVED, CHANGES_REQUESTED, COMMENTED or PENDING
    state: str
    commit_id: str
    comments: list[dict[str, Any]] = field(default_factory=list)
    submitted_at: str = ""


def hunk_lines(patch: str) -> list[dict[str, set[int]]]:
    """Per hunk of a file's patch, the line numbers it shows on each side (LEFT, RIGHT)."""
    hunks: list[dict[str, set[int]]] = []
    old = new = 0
    for text in patch.splitlines():
        header = _HUNK.match(text)
        if header:
            old, new = int(header[1]), int(header[2])
            hunks.append({"LEFT": set(), "RIGHT": set()})
        elif hunks and not text.startswith("\\"):
            if not text.startswith("+"):
                hunks[-1]["LEFT"].add(old)
                old += 1
            if not text.startswith("-"):
                hunks[-1]["RIGHT"].add(new)
                new += 1
    return hunks


class ReviewRoutes:
    """The review routes and what they keep."""

    def __init__(self, state: GitHubState, writes: GitHubWrites) -> None:
        self.state = state
        self.writes = writes
        self._reviews: dict[tuple[str, str, int], list[Review]] = {}
        pattern = re.compile(r"/repos/([^/]+)/([^/]+)/pulls/(\d+)/reviews")
        self.routes: list[tuple[str, re.Pattern[str], Callable[[Call, re.Match[str]], Reply]]] = [
            ("GET", pattern, self._list),
            ("POST", pattern, self._create),
        ]

    def of(self, owner: str, repo: str, number: int) -> list[Review]:
        """The reviews of a pull request, oldest first (copies)."""
        found = self._reviews.get((owner.lower(), repo.lower(), number), [])
        return [replace(review, comments=list(review.comments)) for review in found]

    def seed(self, owner: str, repo: str, number: int, body: str, *, login: str) -> Review:
        """Add a submitted review (COMMENTED) by ``login`` to a pull request."""
        review = Review(self.writes.new_id(), owner, repo, number, login, body, "COMMENTED",
                        "", submitted_at=now_text())  # fmt: skip
        self._reviews.setdefault((owner.lower(), repo.lower(), number), []).append(review)
        return review

    def by_id(self, number: int) -> Review | None:
        """The review with this id, None if there is none."""
        found = (r for reviews in self._reviews.values() for r in reviews if r.id == number)
        return next(found, None)

    def _list(self, call: Call, match: re.Match[str]) -> Reply:
        key = (match[1].lower(), match[2].lower(), int(match[3]))
        if key not in self.state.pulls:
            return github_error(404, "Not Found")
        items, page = paginate(self._reviews.get(key, []), call, default=30, maximum=100)
        reply = json_reply([_review_json(review, call) for review in items])
        links = link_header(call, page)
        if links:
            reply.headers["Link"] = links
        return reply

    def _create(self, call: Call, match: re.Match[str]) -> Reply:
        key = (match[1].lower(), match[2].lower(), int(match[3]))
        pull = self.state.pulls.get(key)
        if pull is None:
            return github_error(404, "Not Found")
        data, problem = body_json(call)
        if problem is not None:
            return problem
        patches = {change.filename: change.patch for change in pull.files}
        problem = _check_review(data, pull.head_sha) or _check_comments(data, patches)
        if problem is not None:
            return problem
        event = data.get("event")
        review = Review(
            self.writes.new_id(),
            match[1],
            match[2],
            int(match[3]),
            self.writes.login_of(call),
            data.get("body") or "",
            EVENTS[event] if event else "PENDING",
            data.get("commit_id") or pull.head_sha,
            list(data.get("comments") or []),
            now_text() if event else "",
        )
        self._reviews.setdefault(key, []).append(review)
        return json_reply(_review_json(review, call))


def _check_review(data: Any, head_sha: str) -> Reply | None:
    optional = {"commit_id": "string", "body": "string", "event": "string", "comments": "array"}
    errors = check_fields(data, _REVIEW, {}, optional)
    if errors:
        return invalid(errors)
    event = data.get("event")
    if event is not None and event not in EVENTS:
        return custom(_REVIEW, "event", "event is not included in the list")
    if event in ("REQUEST_CHANGES", "COMMENT") and not data.get("body"):
        return custom(_REVIEW, "body", f"body can't be blank when the event is {event}")
    commit = data.get("commit_id")
    if commit is not None and commit != head_sha:
        return custom(_REVIEW, "commit_id", "commit_id is not part of the pull request")
    return None


def _check_comments(data: dict[str, Any], patches: dict[str, str]) -> Reply | None:
    for comment in data.get("comments") or []:
        errors = check_fields(comment, _THREAD, _COMMENT_REQUIRED, _COMMENT_OPTIONAL)
        if errors:
            return invalid(errors)
        problem = _check_sides(comment) or _check_place(comment, patches)
        if problem:
            return custom(_THREAD, "pull_request_review_thread", problem)
    return None


def _check_sides(comment: dict[str, Any]) -> str:
    for name in ("side", "start_side"):
        if comment.get(name) is not None and comment[name] not in SIDES:
            return f"pull_request_review_thread.{name} is not included in the list"
    if comment.get("start_side") is not None and comment.get("start_line") is None:
        return "pull_request_review_thread.start_side needs a start_line"
    if comment.get("line") is None and comment.get("position") is None:
        return "pull_request_review_thread.line is missing"
    return ""


def _check_place(comment: dict[str, Any], patches: dict[str, str]) -> str:
    """What is wrong with where a comment goes, "" if nothing."""
    patch = patches.get(comment["path"])
    if patch is None:
        return "pull_request_review_thread.path could not be resolved"
    if comment.get("line") is None:
        lines = patch.splitlines()
        first = next((i for i, text in enumerate(lines) if _HUNK.match(text)), len(lines))
        fits = 1 <= comment["position"] < len(lines) - first
        return "" if fits else "pull_request_review_thread.position could not be resolved"
    return _check_lines(comment, hunk_lines(patch))


def _check_lines(comment: dict[str, Any], hunks: list[dict[str, set[int]]]) -> str:
    side = comment.get("side") or "RIGHT"
    hunk = next((h for h in hunks if comment["line"] in h[side]), None)
    if hunk is None:
        return "pull_request_review_thread.line must be part of the diff"
    start = comment.get("start_line")
    if start is None:
        return ""
    if start >= comment["line"]:
        return "pull_request_review_thread.start_line must precede the end line"
    if start not in hunk[comment.get("start_side") or side]:
        return "pull_request_review_thread.start_line must be part of the same hunk as the line"
    return ""


def _review_json(review: Review, call: Call) -> dict[str, Any]:
    repo_url = f"{call.base_url}/repos/{review.owner}/{review.repo}"
    html = f"https://github.com/{review.owner}/{review.repo}/pull/{review.number}"
    body = {
        "id": review.id,
        "node_id": f"PRR_{review.id}",
        "user": user_json(review.login),
        "body": review.body,
        "state": review.state,
        "html_url": f"{html}#pullrequestreview-{review.id}",
        "pull_request_url": f"{repo_url}/pulls/{review.number}",
        "commit_id": review.commit_id,
        "author_association": "NONE",
    }
    if review.submitted_at:
        body["submitted_at"] = review.submitted_at
    return body
