"""👀 on the comment that carried a command, on GitHub: ``react`` and ``reaction_preview``.

* an issue or pull request comment (``issue_comment:<id>``):
  ``POST /repos/{o}/{r}/issues/comments/{id}/reactions {"content": "eyes"}``
* a review comment (``review_comment:<id>``):
  ``POST /repos/{o}/{r}/pulls/comments/{id}/reactions {"content": "eyes"}``
* a review (``review:<node id>``): REST has no reactions for a review, so GraphQL's
  ``addReaction(input: {subjectId, content: EYES})`` on the review's node id, at the API's
  ``/graphql`` (GitHub Enterprise Server: ``/api/graphql`` beside ``/api/v3``). GraphQL
  answers 200 with ``errors`` when it refuses: the write fails with GitHub's message
  (``RATE_LIMITED`` is transient).

GitHub answers 201 for a new reaction and 200 for one our account already made, and
``addReaction`` of a reaction already there changes nothing: a try whose outcome is unknown
simply asks again, and the comment still has one 👀 from us.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from mecha.forges.github.rest import GitHubRest
from mecha.forges.writer import Done, WriteFailure
from mecha.policy.reactions import subject_kind
from mecha.policy.writes import Write

_PATHS = {"issue_comment": "issues/comments", "review_comment": "pulls/comments"}
_ADD = (
    "mutation($subject: ID!, $content: ReactionContent!) { "
    "addReaction(input: {subjectId: $subject, content: $content}) { reaction { content } } }"
)


def graphql_url(api_url: str) -> str:
    """Where GitHub's GraphQL API is, beside the REST API at ``api_url``."""
    base = api_url.rstrip("/")
    return base.removesuffix("/v3") if base.endswith("/api/v3") else base


async def react(api: GitHubRest, graphql: GitHubRest, repo: str, write: Write) -> Done:
    """Make the reaction ``write`` describes; WriteFailure (via FetchError) if GitHub refuses."""
    kind, ident = subject_kind(write.subject)
    if kind == "review":
        variables = {"subject": ident, "content": write.body.upper()}
        data = await graphql.send("POST", "/graphql", {"query": _ADD, "variables": variables})
        _check_graphql(data, ident)
        return Done(f"reaction {write.body} on review {ident}")
    path = _PATHS.get(kind)
    if path is None or not ident.isdigit():
        raise WriteFailure(f"GitHub reaction: no comment to react to ({write.subject!r})",
                           transient=False)  # fmt: skip
    made = await api.send(
        "POST", f"{repo}/{path}/{quote(ident)}/reactions", {"content": write.body}
    )
    number = str(made.get("id", "")) if isinstance(made, dict) else ""
    said = kind.replace("_", " ")
    return Done(f"reaction {write.body} on {said} {ident}", number)


def reaction_preview(repo: str, write: Write) -> str:
    """The request ``react`` would make."""
    kind, ident = subject_kind(write.subject)
    if kind == "review":
        return f"POST /graphql addReaction {write.body.upper()} on review {ident}"
    return f"POST {repo}/{_PATHS.get(kind, kind)}/{ident}/reactions ({write.body})"


def _check_graphql(data: Any, subject: str) -> None:
    errors = data.get("errors") if isinstance(data, dict) else None
    if not errors:
        return
    first = errors[0] if isinstance(errors, list) and isinstance(errors[0], dict) else {}
    message = str(first.get("message") or errors)
    limited = first.get("type") == "RATE_LIMITED"
    raise WriteFailure(f"GitHub GraphQL addReaction on {subject}: {message}", transient=limited)
