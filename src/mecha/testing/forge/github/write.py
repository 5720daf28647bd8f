"""The GitHub half's write side: issues, comments, labels, statuses, reviews: ``GitHubWrites``.

Served under ``/github`` beside the read side (``forge_github``), in GitHub's wire format:

* ``GET /user``: the token's account (403 for an App installation token, as GitHub);
  ``GET /app``: the App, for its JWT (``slug``)
* ``GET|POST /repos/{o}/{r}/issues/{n}/comments`` (``per_page`` ≤ 100, ``page``, ``Link``);
  ``GET|PATCH /repos/{o}/{r}/issues/comments/{id}``. Issues and pull requests share
  numbers; a comment's ``user.login`` is the account of the token that wrote it
* ``GET|POST /repos/{o}/{r}/issues/{n}/labels`` (the issue's labels after the change);
  ``DELETE .../labels/{name}`` (the rest, or 404 "Label does not exist")
* ``POST /repos/{o}/{r}/statuses/{sha}``: 201
* ``GET|POST /repos/{o}/{r}/pulls/{n}/reviews``: review comments are checked against the
  pull request's patches (``forge_github_review``)

Bodies are checked as GitHub does: 400 "Problems parsing JSON"; 422 "Validation Failed"
with ``errors`` (``missing_field``, ``invalid``, ``custom``). Like GitHub, anyone may edit
any comment here (a maintainer can): telling our comments from others' is the client's job.
Change state only under the emulator's lock (``forge.lock``) while the server runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, unquote

from mecha.testing.forge.github.body import (
    body_json,
    check_fields,
    custom,
    invalid,
    now_text,
    user_json,
)
from mecha.testing.forge.github.emulator import GitHubState, github_error
from mecha.testing.forge.github.review import Review, ReviewRoutes
from mecha.testing.forge.wire import Call, Reply, fake_sha, json_reply, link_header, paginate

__all__ = ["Comment", "GitHubWrites", "Review"]

#: the login of a token with no login set
DEFAULT_LOGIN = "mecha-bot"
#: GitHub's limits on a comment body and a status description
MAX_COMMENT = 65536
MAX_DESCRIPTION = 140
STATES = ("error", "failure", "pending", "success")
_SHA = re.compile(r"[0-9a-f]{40}")
Route = tuple[str, re.Pattern[str], Callable[[Call, re.Match[str]], Reply]]
_REPO = r"/repos/([^/]+)/([^/]+)"


@dataclass
class Comment:
    """An issue or pull request comment."""

    id: int
    owner: str
    repo: str
    number: int
    body: str
    login: str
    created_at: str
    updated_at: str


@dataclass
class _Thread:
    """The issue side of an issue or pull request: labels and comment ids."""

    title: str = ""
    labels: list[str] = field(default_factory=list)
    comments: list[int] = field(default_factory=list)


class GitHubWrites:
    """What the write routes keep; seed it and read it back through the methods below."""

    def __init__(self, state: GitHubState) -> None:
        self.state = state
        #: token -> the login of its account (default DEFAULT_LOGIN)
        self.logins: dict[str, str] = {}
        #: the App's slug: its installation tokens write as "<slug>[bot]"
        self.app_slug = "mecha-app"
        self._threads: dict[tuple[str, str, int], _Thread] = {}
        self._comments: dict[int, Comment] = {}
        self._statuses: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._next_id = 1000
        self.reviews_side = ReviewRoutes(state, self)
        self.routes: list[Route] = [
            ("GET", re.compile(r"/user"), self._user),
            ("GET", re.compile(r"/app"), self.get_app),
            ("GET", re.compile(rf"{_REPO}/issues/(\d+)/comments"), self._list_comments),
            ("POST", re.compile(rf"{_REPO}/issues/(\d+)/comments"), self._create_comment),
            ("GET", re.compile(rf"{_REPO}/issues/comments/(\d+)"), self._get_comment),
            ("PATCH", re.compile(rf"{_REPO}/issues/comments/(\d+)"), self._update_comment),
            ("GET", re.compile(rf"{_REPO}/issues/(\d+)/labels"), self._list_labels),
            ("POST", re.compile(rf"{_REPO}/issues/(\d+)/labels"), self._add_labels),
            ("DELETE", re.compile(rf"{_REPO}/issues/(\d+)/labels/([^/]+)"), self._remove_label),
            ("POST", re.compile(rf"{_REPO}/statuses/([^/]+)"), self._create_status),
            *self.reviews_side.routes,
        ]

    # ------------------------------------------------------------ seeding and reading

    def add_issue(
        self, owner: str, repo: str, number: int, *, title: str = "", labels: Iterable[str] = ()
    ) -> None:
        """Seed an issue (a pull request's number is taken: ValueError)."""
        if _key(owner, repo, number) in self.state.pulls:
            raise ValueError(f"{owner}/{repo}#{number} is a pull request already")
        self._threads[_key(owner, repo, number)] = _Thread(title, list(labels))

    def add_comment(self, owner: str, repo: str, number: int, body: str, *, login: str) -> int:
        """Seed a comment by ``login`` (e.g. another account's, with a forged marker); its id."""
        thread = self.thread(owner, repo, number)
        if thread is None:
            raise ValueError(f"{owner}/{repo}#{number} is neither an issue nor a pull request")
        comment = self._new_comment(
            thread, owner=owner, repo=repo, number=number, body=body, login=login
        )
        return comment.id

    def comments(self, owner: str, repo: str, number: int) -> list[Comment]:
        """The comments on an issue or pull request, oldest first (copies)."""
        thread = self.thread(owner, repo, number)
        ids = thread.comments if thread else []
        return [replace(self._comments[comment]) for comment in ids]

    def labels(self, owner: str, repo: str, number: int) -> list[str]:
        """The labels on an issue or pull request."""
        thread = self.thread(owner, repo, number)
        return list(thread.labels) if thread else []

    def statuses(self, owner: str, repo: str, sha: str) -> list[dict[str, Any]]:
        """The statuses set on a commit, oldest first, as GitHub answered them."""
        return [dict(status) for status in self._statuses.get(_key(owner, repo, sha), [])]

    def comment_by_id(self, number: int) -> Comment | None:
        """The issue or pull request comment with this id (the stored one), None if none."""
        return self._comments.get(number)

    def reviews(self, owner: str, repo: str, number: int) -> list[Review]:
        """The reviews of a pull request, oldest first."""
        return self.reviews_side.of(owner, repo, number)

    def login_of(self, call: Call) -> str:
        """The account of the token the call carries."""
        token = _token(call)
        if token in {issued for _, issued in self.state.issued}:
            return f"{self.app_slug}[bot]"
        return self.logins.get(token, DEFAULT_LOGIN)

    def thread(self, owner: str, repo: str, number: int) -> _Thread | None:
        """The issue side of an issue or pull request (made for a pull on first use)."""
        key = _key(owner, repo, number)
        if key not in self._threads and key in self.state.pulls:
            self._threads[key] = _Thread(self.state.pulls[key].title)
        return self._threads.get(key)

    def new_id(self) -> int:
        """A fresh id for a comment, status or review."""
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------ accounts

    def _user(self, call: Call, match: re.Match[str]) -> Reply:
        token = _token(call)
        if not token:
            return github_error(401, "Requires authentication")
        if token in {issued for _, issued in self.state.issued}:
            return github_error(403, "Resource not accessible by integration")
        return json_reply(user_json(self.login_of(call)))

    def get_app(self, call: Call, match: re.Match[str]) -> Reply:
        """``GET /app``: authenticated with the App's JWT, not a token."""
        problem = self.state._jwt_problem(call.headers.get("authorization", ""))
        if problem:
            return github_error(401, problem)
        body = {
            "id": int(self.state.app_id),
            "slug": self.app_slug,
            "node_id": f"A_{self.state.app_id}",
            "name": self.app_slug.replace("-", " ").title(),
            "owner": user_json("octo"),
            "permissions": {"issues": "write", "pull_requests": "write", "statuses": "write"},
            "events": ["pull_request", "issue_comment"],
        }
        return json_reply(body)

    # ------------------------------------------------------------ comments

    def _list_comments(self, call: Call, match: re.Match[str]) -> Reply:
        owner, repo, number = match[1], match[2], int(match[3])
        thread = self.thread(owner, repo, number)
        if thread is None:
            return _not_found()
        items, page = paginate(thread.comments, call, default=30, maximum=100)
        reply = json_reply([self._comment_json(self._comments[i], call) for i in items])
        links = link_header(call, page)
        if links:
            reply.headers["Link"] = links
        return reply

    def _create_comment(self, call: Call, match: re.Match[str]) -> Reply:
        owner, repo, number = match[1], match[2], int(match[3])
        thread = self.thread(owner, repo, number)
        if thread is None:
            return _not_found()
        body, problem = self._comment_body(call)
        if problem is not None:
            return problem
        login = self.login_of(call)
        comment = self._new_comment(
            thread, owner=owner, repo=repo, number=number, body=body, login=login
        )
        reply = json_reply(self._comment_json(comment, call), 201)
        reply.headers["Location"] = self._comment_json(comment, call)["url"]
        return reply

    def _get_comment(self, call: Call, match: re.Match[str]) -> Reply:
        comment = self._find_comment(match)
        if comment is None:
            return _not_found()
        return json_reply(self._comment_json(comment, call))

    def _update_comment(self, call: Call, match: re.Match[str]) -> Reply:
        comment = self._find_comment(match)
        if comment is None:
            return _not_found()
        body, problem = self._comment_body(call)
        if problem is not None:
            return problem
        comment.body, comment.updated_at = body, now_text()
        return json_reply(self._comment_json(comment, call))

    def _comment_body(self, call: Call) -> tuple[str, Reply | None]:
        data, problem = body_json(call)
        if problem is not None:
            return "", problem
        errors = check_fields(data, "IssueComment", {"body": "string"}, {})
        if errors:
            return "", invalid(errors)
        if len(data["body"]) > MAX_COMMENT:
            message = f"Body is too long (maximum is {MAX_COMMENT} characters)"
            return "", custom("IssueComment", "data", message)
        return str(data["body"]), None

    def _find_comment(self, match: re.Match[str]) -> Comment | None:
        comment = self._comments.get(int(match[3]))
        same_repo = comment is not None and _key(comment.owner, comment.repo, 0) == _key(
            match[1], match[2], 0
        )
        return comment if same_repo else None

    def _new_comment(
        self, thread: _Thread, *, owner: str, repo: str, number: int, body: str, login: str
    ) -> Comment:
        when = now_text()
        comment = Comment(self.new_id(), owner, repo, number, body, login, when, when)
        self._comments[comment.id] = comment
        thread.comments.append(comment.id)
        return comment

    def _comment_json(self, comment: Comment, call: Call) -> dict[str, Any]:
        repo_url = f"{call.base_url}/repos/{comment.owner}/{comment.repo}"
        html = f"https://github.com/{comment.owner}/{comment.repo}/issues/{comment.number}"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{repo_url}/issues/comments/{comment.id}",
            "html_url": f"{html}#issuecomment-{comment.id}",
            "issue_url": f"{repo_url}/issues/{comment.number}",
            "body": comment.body,
            "user": user_json(comment.login),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "author_association": "NONE",
        }

    # ------------------------------------------------------------ labels

    def _list_labels(self, call: Call, match: re.Match[str]) -> Reply:
        thread = self.thread(match[1], match[2], int(match[3]))
        if thread is None:
            return _not_found()
        return json_reply([_label_json(name, match, call) for name in thread.labels])

    def _add_labels(self, call: Call, match: re.Match[str]) -> Reply:
        thread = self.thread(match[1], match[2], int(match[3]))
        if thread is None:
            return _not_found()
        data, problem = body_json(call)
        if problem is not None:
            return problem
        names = _label_names(data)
        if names is None:
            return invalid([{"resource": "Label", "field": "labels", "code": "invalid"}])
        known = {name.lower() for name in thread.labels}
        for name in names:
            if name.lower() not in known:
                thread.labels.append(name)
                known.add(name.lower())
        return json_reply([_label_json(name, match, call) for name in thread.labels])

    def _remove_label(self, call: Call, match: re.Match[str]) -> Reply:
        thread = self.thread(match[1], match[2], int(match[3]))
        if thread is None:
            return _not_found()
        name = unquote(match[4]).lower()
        if name not in {label.lower() for label in thread.labels}:
            return github_error(404, "Label does not exist")
        thread.labels = [label for label in thread.labels if label.lower() != name]
        return json_reply([_label_json(label, match, call) for label in thread.labels])

    # ------------------------------------------------------------ statuses

    def _create_status(self, call: Call, match: re.Match[str]) -> Reply:
        owner, repo, sha = match[1], match[2], unquote(match[3])
        data, problem = body_json(call)
        if problem is not None:
            return problem
        optional = {"target_url": "string", "description": "string", "context": "string"}
        errors = check_fields(data, "Status", {"state": "string"}, optional)
        if errors:
            return invalid(errors)
        if data["state"] not in STATES:
            return custom("Status", "state", "state is not included in the list")
        description = data.get("description")
        if description is not None and len(description) > MAX_DESCRIPTION:
            message = f"description is too long (maximum is {MAX_DESCRIPTION} characters)"
            return custom("Status", "description", message)
        if not _SHA.fullmatch(sha):
            return invalid([f"No commit found for SHA: {sha}"])
        status = self._status_json(data, call, match, self.login_of(call))
        self._statuses.setdefault(_key(owner, repo, sha), []).append(status)
        return json_reply(status, 201)

    def _status_json(
        self, data: dict[str, Any], call: Call, match: re.Match[str], login: str
    ) -> dict[str, Any]:
        number, when = self.new_id(), now_text()
        return {
            "url": f"{call.base_url}/repos/{match[1]}/{match[2]}/statuses/{match[3]}",
            "id": number,
            "node_id": f"SC_{number}",
            "state": data["state"],
            "description": data.get("description"),
            "target_url": data.get("target_url"),
            "context": data.get("context") or "default",
            "created_at": when,
            "updated_at": when,
            "creator": user_json(login),
        }


def _label_names(data: Any) -> list[str] | None:
    """The names a labels body holds (``{"labels": [...]}`` or a bare list), None if bad."""
    items = data.get("labels") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return None
    names = [item.get("name") if isinstance(item, dict) else item for item in items]
    if not all(isinstance(name, str) and name.strip() for name in names):
        return None
    return [str(name) for name in names]


def _label_json(name: str, match: re.Match[str], call: Call) -> dict[str, Any]:
    number = int(fake_sha(f"label:{name.lower()}")[:7], 16)
    return {
        "id": number,
        "node_id": f"LA_{number}",
        "url": f"{call.base_url}/repos/{match[1]}/{match[2]}/labels/{quote(name, safe='')}",
        "name": name,
        "color": "ededed",
        "default": False,
        "description": None,
    }


def _not_found() -> Reply:
    return github_error(404, "Not Found")


def _token(call: Call) -> str:
    scheme, _, token = call.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() in ("bearer", "token") else ""


def _key(owner: str, repo: str, number: Any) -> tuple[str, str, Any]:
    return (owner.lower(), repo.lower(), number)
