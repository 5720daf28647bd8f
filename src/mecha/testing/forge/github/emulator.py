"""The GitHub half of the forge API emulator: pull requests, compare, App installation tokens.

Served under ``/github`` (which stands for ``https://api.github.com``):

* ``GET /repos/{o}/{r}/compare/{base}...{head}``: JSON with ``status``, ``ahead_by``,
  ``behind_by``, ``commits`` and ``files[]`` (at most 300), or the unified diff when
  ``Accept`` asks for ``application/vnd.github.diff`` (406 ``too_large`` past 300 files or
  20 000 lines, as GitHub); any two commits of the repository's ``CommitGraph`` (a pull
  request pushed to, force-pushed: ``compare.py``), 404 for a commit it lacks
* ``GET /repos/{o}/{r}/pulls/{n}``: JSON, or the diff with the diff media type
* ``GET /repos/{o}/{r}/pulls/{n}/files``: ``per_page`` (default 30, at most 100), ``page``,
  ``Link`` with rel next/last/prev/first; 3000 files at most, as GitHub
* ``POST /app/installations/{id}/access_tokens``: checks the App's JWT (RS256, ``iss``,
  at most 10 minutes long) and answers 201 ``{"token", "expires_at", ...}``
* the write side (comments, labels, statuses, reviews, ``/user``, ``/app``): see
  ``forge_github_write``; its state and test helpers are ``GitHubState.writes``;
  reactions (REST and GraphQL's ``addReaction``) are ``GitHubState.reactions``

With any token configured (or an App), requests need ``Authorization: Bearer <token>`` or
``token <token>``, else 401 ``{"message": "Bad credentials", ...}`` as GitHub answers.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

from mecha.testing.forge.commits import CommitGraph, UnknownCommit, Unrelated
from mecha.testing.forge.github.compare import MAX_COMPARE_FILES, comparison_json, file_json
from mecha.testing.forge.wire import (
    Call,
    FileChange,
    Reply,
    git_section,
    json_reply,
    link_header,
    paginate,
    text_reply,
)

DOCS = "https://docs.github.com/rest"
#: GitHub lists at most this many files of a pull request (and 300 of a comparison)
MAX_PULL_FILES = 3000
#: past these, GitHub will not send a diff (406)
MAX_DIFF_FILES = 300
MAX_DIFF_LINES = 20_000
_RATE = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999", "X-RateLimit-Used": "1"}


@dataclass
class Pull:
    """A seeded pull request."""

    owner: str
    repo: str
    number: int
    base_sha: str
    head_sha: str
    files: list[FileChange] = field(default_factory=list)
    title: str = ""


def github_error(status: int, message: str, **extra: Any) -> Reply:
    """GitHub's error shape: ``{"message", "documentation_url", "status"}`` (and ``extra``)."""
    body = {"message": message, **extra, "documentation_url": DOCS, "status": str(status)}
    return json_reply(body, status)


def diff_reply(files: list[FileChange]) -> Reply:
    """The unified diff GitHub serves for these files, or its 406 when it is too large."""
    lines = sum(change.patch.count("\n") for change in files)
    if len(files) > MAX_DIFF_FILES or lines > MAX_DIFF_LINES:
        what = f"files ({MAX_DIFF_FILES})" if len(files) > MAX_DIFF_FILES else "lines (20000)"
        message = (
            f"Sorry, the diff exceeded the maximum number of {what}. Consider using "
            "'List pull requests files' API or locally cloning the repository instead."
        )
        errors = [{"resource": "PullRequest", "field": "diff", "code": "too_large"}]
        return github_error(406, message, errors=errors)
    return text_reply("".join(git_section(change) for change in files), "text/plain")


class GitHubState:
    """Everything the GitHub half knows; change it only under the emulator's lock."""

    def __init__(self) -> None:
        self.pulls: dict[tuple[str, str, int], Pull] = {}
        #: (owner, repo) lowercased → its commits (seeded pulls and their pushes)
        self.graphs: dict[tuple[str, str], CommitGraph] = {}
        #: accepted tokens -> expiry (epoch seconds; None: never)
        self.tokens: dict[str, float | None] = {}
        self.app_id = ""
        self.app_key: Any = None
        self.token_ttl = 3600.0
        #: (installation id, token) for every installation token handed out
        self.issued: list[tuple[str, str]] = []
        self.routes: list[tuple[str, re.Pattern[str], Callable[[Call, re.Match[str]], Reply]]] = [
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/compare/(.+)"), self._compare),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/pulls/(\d+)"), self._pull),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/pulls/(\d+)/files"), self._files),
            ("POST", re.compile(r"/app/installations/(\d+)/access_tokens"), self._access_token),
        ]
        # the write side (issues, comments, labels, statuses, reviews, /user, /app)
        from mecha.testing.forge.github.write import GitHubWrites

        self.writes = GitHubWrites(self)
        self.routes += self.writes.routes
        from mecha.testing.forge.github.reactions import GitHubReactions

        #: reactions to comments and reviews (REST, and GraphQL's addReaction)
        self.reactions = GitHubReactions(self.writes)
        self.routes += self.reactions.routes
        #: routes that check an App JWT themselves instead of a token
        self.jwt_routes = [self._access_token, self.writes.get_app]

    def handle(self, call: Call) -> Reply:
        """Answer ``call`` as GitHub would."""
        for method, pattern, route in self.routes:
            match = pattern.fullmatch(call.path)
            if match and method == call.method:
                if route not in self.jwt_routes and not self._authorized(call):
                    return github_error(401, "Bad credentials")
                reply = route(call, match)
                reply.headers.update(_RATE)
                return reply
        return github_error(404, "Not Found")

    def _authorized(self, call: Call) -> bool:
        if not self.tokens and not self.app_id:
            return True
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or token not in self.tokens:
            return False
        expiry = self.tokens[token]
        return expiry is None or time.time() < expiry

    def _find(self, owner: str, repo: str, number: int) -> Pull | None:
        return self.pulls.get((owner.lower(), repo.lower(), number))

    def _compare(self, call: Call, match: re.Match[str]) -> Reply:
        owner, repo, basehead = match.groups()
        base, dots, head = basehead.partition("...")
        if not dots:
            return github_error(404, "Not Found")
        pull = next(
            (
                p
                for p in self.pulls.values()
                if (p.owner.lower(), p.repo.lower()) == (owner.lower(), repo.lower())
                and (p.base_sha, p.head_sha) == (base, head)
            ),
            None,
        )
        if pull is None:
            return self._compare_commits(call, f"{owner}/{repo}", base, head)
        if _wants_diff(call):
            return diff_reply(pull.files)
        files = [file_json(change) for change in pull.files[:MAX_COMPARE_FILES]]
        return json_reply(_comparison(pull, files))

    def _compare_commits(self, call: Call, repo_path: str, base: str, head: str) -> Reply:
        """Any two commits of the repository, compared in its graph."""
        owner, _, repo = repo_path.partition("/")
        graph = self.graph(owner, repo)
        try:
            comparison = graph.compare(base, head)
        except UnknownCommit:
            return github_error(404, "Not Found")
        except Unrelated:
            return github_error(404, f"No common ancestor between {base} and {head}.")
        if _wants_diff(call):
            return diff_reply(list(comparison.files))
        shown = comparison_json(comparison, graph, call, repo_path=repo_path, base=base, head=head)
        return json_reply(shown)

    def graph(self, owner: str, repo: str) -> CommitGraph:
        """The commits of ``owner/repo`` (made empty on first use)."""
        return self.graphs.setdefault((owner.lower(), repo.lower()), CommitGraph())

    def _pull(self, call: Call, match: re.Match[str]) -> Reply:
        pull = self._find(match[1], match[2], int(match[3]))
        if pull is None:
            return github_error(404, "Not Found")
        if _wants_diff(call):
            return diff_reply(pull.files)
        return json_reply(_pull_json(pull, call.base_url))

    def _files(self, call: Call, match: re.Match[str]) -> Reply:
        pull = self._find(match[1], match[2], int(match[3]))
        if pull is None:
            return github_error(404, "Not Found")
        listed = pull.files[:MAX_PULL_FILES]
        items, page = paginate(listed, call, default=30, maximum=100)
        links = link_header(call, page)
        reply = json_reply([file_json(change) for change in items])
        if links:
            reply.headers["Link"] = links
        return reply

    def _access_token(self, call: Call, match: re.Match[str]) -> Reply:
        problem = self._jwt_problem(call.headers.get("authorization", ""))
        if problem:
            return github_error(401, problem)
        token = "ghs_" + secrets.token_hex(18)
        expiry = time.time() + self.token_ttl
        self.tokens[token] = expiry
        self.issued.append((match[1], token))
        expires_at = datetime.fromtimestamp(expiry, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "token": token,
            "expires_at": expires_at,
            "permissions": {"contents": "read", "pull_requests": "write"},
            "repository_selection": "all",
        }
        return json_reply(body, 201)

    def _jwt_problem(self, header: str) -> str:
        """What is wrong with the App JWT in ``header``, "" if nothing."""
        undecodable = "A JSON web token could not be decoded"
        scheme, _, token = header.partition(" ")
        if not self.app_id or scheme.lower() != "bearer" or not token:
            return undecodable
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            claims = jwt.decode(
                token, self.app_key, algorithms=["RS256"], options={"require": ["iat", "exp"]}
            )
        except jwt.ExpiredSignatureError:
            return "'Expiration time' claim ('exp') is too far in the future or has passed"
        except jwt.PyJWTError:
            return undecodable
        problems = [
            (algorithm != "RS256", undecodable),
            (str(claims.get("iss")) != self.app_id, "'Issuer' claim ('iss') must be the App's id"),
            (
                int(claims["exp"]) - int(claims["iat"]) > 660,
                "'Expiration time' claim ('exp') is too far in the future",
            ),
        ]
        return next((message for wrong, message in problems if wrong), "")


def _wants_diff(call: Call) -> bool:
    accept = call.headers.get("accept", "")
    return "application/vnd.github.diff" in accept or "application/vnd.github.v3.diff" in accept


def _comparison(pull: Pull, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "status": "ahead",
        "ahead_by": 1,
        "behind_by": 0,
        "total_commits": 1,
        "base_commit": {"sha": pull.base_sha},
        "merge_base_commit": {"sha": pull.base_sha},
        "commits": [{"sha": pull.head_sha}],
        "files": files,
    }


def _pull_json(pull: Pull, base_url: str) -> dict[str, Any]:
    return {
        "number": pull.number,
        "state": "open",
        "title": pull.title or f"Pull request {pull.number}",
        "head": {"sha": pull.head_sha, "ref": "feature"},
        "base": {"sha": pull.base_sha, "ref": "main"},
        "changed_files": len(pull.files),
        "additions": sum(change.additions for change in pull.files),
        "deletions": sum(change.deletions for change in pull.files),
        "url": f"{base_url}/repos/{pull.owner}/{pull.repo}/pulls/{pull.number}",
    }
