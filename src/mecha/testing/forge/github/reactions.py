"""Reactions in the GitHub emulator: ``GitHubReactions``.

Under ``/github``, in GitHub's wire format:

* ``GET|POST /repos/{o}/{r}/issues/comments/{id}/reactions`` (an issue or pull request
  comment) and ``GET|POST /repos/{o}/{r}/pulls/comments/{id}/reactions`` (a review comment):
  ``{"content": "eyes"}`` → 201 with the reaction, or 200 with the one the same account
  made already; a content that is not one of GitHub's eight is 422 "Validation Failed";
  a comment that is not there, 404
* ``POST /graphql``: the ``addReaction`` mutation only, ``subjectId`` and ``content`` given
  as variables (``$name``) or literally; the subject is a review's node id (``PRR_<id>``)
  or an issue comment's (``IC_<id>``). An unknown one is GitHub's 200 with
  ``errors: [{"type": "NOT_FOUND", "message": "Could not resolve to a node ..."}]``

Seed the comments people react to with ``GitHubWrites.add_comment`` (issue comments),
``add_review_comment`` and ``add_review`` here; read reactions back with ``reactions``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mecha.testing.forge.github.body import (
    body_json,
    check_fields,
    custom,
    invalid,
    now_text,
    user_json,
)
from mecha.testing.forge.github.emulator import github_error
from mecha.testing.forge.github.review import Review
from mecha.testing.forge.wire import Call, Reply, json_reply

if TYPE_CHECKING:
    from mecha.testing.forge.github.write import GitHubWrites

#: what GitHub's REST API takes as ``content``, and GraphQL's names for them
CONTENTS = {
    "+1": "THUMBS_UP", "-1": "THUMBS_DOWN", "laugh": "LAUGH", "confused": "CONFUSED",
    "heart": "HEART", "hooray": "HOORAY", "rocket": "ROCKET", "eyes": "EYES",
}  # fmt: skip
_REPO = r"/repos/([^/]+)/([^/]+)"
_KINDS = {"issues/comments": "issue_comment", "pulls/comments": "review_comment"}
Route = tuple[str, re.Pattern[str], Callable[[Call, re.Match[str]], Reply]]


class GitHubReactions:
    """The reaction routes and what they keep; change it under the emulator's lock."""

    def __init__(self, writes: GitHubWrites) -> None:
        self.writes = writes
        #: (kind, id) -> [(login, content, reaction id)], oldest first; kinds:
        #: issue_comment, review_comment, review
        self._given: dict[tuple[str, int], list[tuple[str, str, int]]] = {}
        #: review comments seeded: id -> (owner, repo) lowercased
        self._review_comments: dict[int, tuple[str, str]] = {}
        where = rf"{_REPO}/(issues/comments|pulls/comments)/(\d+)/reactions"
        self.routes: list[Route] = [
            ("GET", re.compile(where), self._list),
            ("POST", re.compile(where), self._create),
            ("POST", re.compile(r"/graphql"), self._graphql),
        ]

    # ------------------------------------------------------------ seeding and reading

    def add_review_comment(self, owner: str, repo: str, body: str, *, login: str) -> int:
        """Seed a review comment (on a pull request's diff); its id."""
        number = self.writes.new_id()
        self._review_comments[number] = (owner.lower(), repo.lower())
        return number

    def add_review(self, owner: str, repo: str, number: int, body: str, *, login: str) -> Review:
        """Seed a submitted review of a pull request (``node_id`` is ``PRR_<id>``)."""
        return self.writes.reviews_side.seed(owner, repo, number, body, login=login)

    def reactions(self, kind: str, number: int) -> list[tuple[str, str]]:
        """(login, content) of the reactions on a comment (``issue_comment``,
        ``review_comment``) or review (``review``), oldest first."""
        return [(login, content) for login, content, _ in self._given.get((kind, number), [])]

    # ------------------------------------------------------------ REST

    def _list(self, call: Call, match: re.Match[str]) -> Reply:
        kind, number = _KINDS[match[3]], int(match[4])
        if not self._exists(kind, match[1], match[2], number):
            return github_error(404, "Not Found")
        given = self._given.get((kind, number), [])
        return json_reply([_reaction_json(reaction) for reaction in given])

    def _create(self, call: Call, match: re.Match[str]) -> Reply:
        kind, number = _KINDS[match[3]], int(match[4])
        if not self._exists(kind, match[1], match[2], number):
            return github_error(404, "Not Found")
        data, problem = body_json(call)
        if problem is not None:
            return problem
        errors = check_fields(data, "Reaction", {"content": "string"}, {})
        if errors:
            return invalid(errors)
        if data["content"] not in CONTENTS:
            return custom("Reaction", "content", f"{data['content']} is not a valid content")
        reaction, made = self._give(kind, number, self.writes.login_of(call), data["content"])
        return json_reply(_reaction_json(reaction), 201 if made else 200)

    def _give(self, kind: str, number: int, login: str, content: str) -> tuple[Any, bool]:
        given = self._given.setdefault((kind, number), [])
        for reaction in given:
            if reaction[:2] == (login, content):
                return reaction, False
        given.append((login, content, self.writes.new_id()))
        return given[-1], True

    def _exists(self, kind: str, owner: str, repo: str, number: int) -> bool:
        if kind == "review_comment":
            return self._review_comments.get(number) == (owner.lower(), repo.lower())
        comment = self.writes.comment_by_id(number)
        return comment is not None and (comment.owner.lower(), comment.repo.lower()) == (
            owner.lower(), repo.lower()
        )  # fmt: skip

    # ------------------------------------------------------------ GraphQL

    def _graphql(self, call: Call, match: re.Match[str]) -> Reply:
        data, problem = body_json(call)
        if problem is not None:
            return problem
        query = data.get("query") if isinstance(data, dict) else None
        variables = data.get("variables") or {} if isinstance(data, dict) else {}
        if not isinstance(query, str) or "addReaction" not in query:
            return _graphql_error("the emulator answers the addReaction mutation only")
        subject = _argument(query, "subjectId", variables)
        content = _argument(query, "content", variables)
        rest = {graphql: rest for rest, graphql in CONTENTS.items()}.get(str(content))
        if rest is None:
            return _graphql_error(f"Argument 'content' has an invalid value ({content})")
        target = self._node(str(subject))
        if target is None:
            message = f"Could not resolve to a node with the global id of '{subject}'"
            return _graphql_error(message, type="NOT_FOUND", path=["addReaction"])
        self._give(*target, self.writes.login_of(call), rest)
        answer = {"addReaction": {"reaction": {"content": content}, "subject": {"id": subject}}}
        return json_reply({"data": answer})

    def _node(self, node_id: str) -> tuple[str, int] | None:
        """The review (``PRR_``) or issue comment (``IC_``) a node id names."""
        prefix, _, number = node_id.partition("_")
        if not number.isdigit():
            return None
        if prefix == "PRR" and self.writes.reviews_side.by_id(int(number)) is not None:
            return "review", int(number)
        if prefix == "IC" and self.writes.comment_by_id(int(number)) is not None:
            return "issue_comment", int(number)
        return None


def _argument(query: str, name: str, variables: Any) -> Any:
    """An input field of the mutation: a ``$variable``'s value, or the literal written."""
    fields = re.search(r"addReaction\s*\(\s*input\s*:\s*\{([^}]*)\}", query)
    found = re.search(rf"\b{name}\s*:\s*(\$?)(\w+)", fields[1]) if fields else None
    if found is None:
        return None
    if found[1]:
        return variables.get(found[2]) if isinstance(variables, dict) else None
    return found[2]


def _graphql_error(message: str, **extra: Any) -> Reply:
    """GraphQL's refusal: 200, ``data`` null where it failed, ``errors`` saying why."""
    error = {**extra, "message": message, "locations": [{"line": 1, "column": 1}]}
    return json_reply({"data": {"addReaction": None}, "errors": [error]})


def _reaction_json(reaction: tuple[str, str, int]) -> dict[str, Any]:
    login, content, number = reaction
    return {"id": number, "node_id": f"REA_{number}", "user": user_json(login),
            "content": content, "created_at": now_text()}  # fmt: skip
