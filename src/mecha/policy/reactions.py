"""The 👀 that acknowledges a comment command: ``reaction_write`` (pure).

When a task of a ``command:`` rule starts and its worker's policy says ``reactions: {allow:
true}``, Mecha reacts with 👀 to the comment that carried the command. The reaction is a
``Write`` (action ``reaction``) in the write-back ledger like any other, under a key made of
the event, the worker and the comment, so a task sent again (a retry, a task taken over by
another node, a restart) plans the same key and the comment gets one 👀.

What is reacted to, by the event that carried the command (``Write.subject``):

* GitHub ``issue_comment``: the comment (``issue_comment:<id>``, REST
  ``POST /repos/{o}/{r}/issues/comments/{id}/reactions``)
* GitHub ``pull_request_review_comment``: the review comment (``review_comment:<id>``,
  ``POST /repos/{o}/{r}/pulls/comments/{id}/reactions``)
* GitHub ``pull_request_review``: the review itself, where GitHub shows the review's body
  (``review:<node id>``). REST has no reactions for a review, so this one goes through
  GraphQL's ``addReaction`` on the review's node id
* GitLab ``note``: the note, on its merge request or issue (``note:<id>``, award emoji
  ``POST /projects/:id/(merge_requests|issues)/:iid/notes/:note_id/award_emoji``). A note on
  a commit or a snippet gets none (it is not on a merge request or issue)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mecha.event import Event
from mecha.policy.plan import place_of
from mecha.policy.writes import Write, ledger_key

#: the reaction, as both forges' REST APIs name it
EYES = "eyes"
#: the event attributes ``reaction_write`` reads besides the place's
REACTION_KEYS = ("comment_id", "comment_node_id")


def reaction_write(event: Event, *, worker: str) -> Write | str:
    """The 👀 on the comment that carried ``event``'s command, or why there is none."""
    subject, why = _subject(event.source, event.type.split(".", 1)[0], event.attrs)
    if why:
        return f"reaction: {why}"
    place = place_of(event)
    if place is None or not place.number:
        return "reaction: the comment is not on a pull request, merge request or issue"
    key = ledger_key(
        event_id=event.id, worker=worker, action="reaction", target=f"{place.name} {subject}",
        head_sha="",
    )  # fmt: skip
    return Write(key=key, worker=worker, action="reaction", place=place, body=EYES,
                 subject=subject)  # fmt: skip


def subject_kind(subject: str) -> tuple[str, str]:
    """``("issue_comment", "123")`` from ``issue_comment:123``."""
    kind, _, ident = subject.partition(":")
    return kind, ident


def _subject(source: str, kind: str, attrs: Mapping[str, Any]) -> tuple[str, str]:
    """(``<kind>:<id>`` for the comment, "") or ("", why there is none)."""
    number = attrs.get("comment_id")
    ident = str(number) if isinstance(number, int) and number > 0 else ""
    if source == "github" and kind == "pull_request_review":
        node = attrs.get("comment_node_id")
        if isinstance(node, str) and node:
            return f"review:{node}", ""
        return "", "the payload has no review.node_id"
    names = {("github", "issue_comment"): "issue_comment",
             ("github", "pull_request_review_comment"): "review_comment",
             ("gitlab", "note"): "note"}  # fmt: skip
    name = names.get((source, kind))
    if name is None:
        return "", "the event is not a comment Mecha can react to"
    if name == "note" and attrs.get("noteable_type") not in ("MergeRequest", "Issue"):
        return "", "a GitLab note on a commit or snippet gets no award emoji from Mecha"
    if not ident:
        field = "object_attributes.id" if name == "note" else "comment.id"
        return "", f"the payload has no {field}"
    return f"{name}:{ident}", ""
