"""Who may start a worker, and comment commands (pure: event attributes in, a reason out).

- **Commands.** A ``command: /review`` rule takes a new comment whose first line starts with
  ``/review`` followed by a space or the end of the line (so ``/reviewer`` is not it). The
  rest of the comment, after the command, is ``command_args``.
- **Who may run a command.** By default OWNER, MEMBER and COLLABORATOR: GitHub's
  ``author_association`` of the comment. ``trust.min`` widens or narrows it:
  ``owner`` (OWNER), ``member`` (the default), ``contributor`` (adds CONTRIBUTOR and
  first-time contributors), ``anyone``.
- **GitLab.** A note does not carry its author's access level: the engine asks GitLab's
  members API (``mecha.forges.gitlab.members``) into ``author_access_level`` (0: no member)
  or ``author_access_error``, and the levels map as ``GITLAB_MIN`` says: Developer (30) and
  up is ``member``, Maintainer (40) and Owner (50) ``owner``, Guest (10) to Reporter (20)
  ``contributor``. A level that could not be looked up refuses the command (fail closed).
- **Forks.** A pull request from a fork (``is_fork``) runs ``on:`` rules unless
  ``trust.forks`` is false.
- **Bots.** A sender is a bot when the forge says so (GitHub's ``sender.type == "Bot"``),
  never by a ``[bot]`` suffix in its login. A bot starts nothing unless its exact login is
  in ``trust.bots``.

Each refusal is a reason in the words ``mecha event show`` prints.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

#: trust.min → the author associations that may run a command (None: anyone)
LEVELS: dict[str, frozenset[str] | None] = {
    "owner": frozenset({"OWNER"}),
    "member": frozenset({"OWNER", "MEMBER", "COLLABORATOR"}),
    "contributor": frozenset(
        {"OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "FIRST_TIMER"}
    ),
    "anyone": None,
}
#: a command rule's event types when it names none: new comments only (an edit runs nothing)
COMMENT_TYPES: dict[str, tuple[str, ...]] = {
    "github": (
        "issue_comment.created",
        "pull_request_review_comment.created",
        "pull_request_review.submitted",
    ),
    "gitlab": ("note",),
}
COMMAND_PATTERN = r"^/[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: the attributes a GitLab note's author's access level arrives in (set before matching)
ACCESS_LEVEL, ACCESS_ERROR = "author_access_level", "author_access_error"
#: trust.min → the lowest GitLab access level that may run a command
GITLAB_MIN = {"owner": 40, "member": 30, "contributor": 10}
#: GitLab's access levels by name (``access_level`` of the members API)
GITLAB_LEVELS = {
    0: "no member", 5: "Minimal access", 10: "Guest", 15: "Planner", 20: "Reporter",
    30: "Developer", 40: "Maintainer", 50: "Owner",
}  # fmt: skip


def command_args(comment: str, command: str) -> str | None:
    """What follows ``command`` in ``comment`` ("" for nothing), or None when the comment's
    first line does not start with it."""
    text = comment.lstrip()
    match = re.match(re.escape(command) + r"(?=[ \t\r\n]|$)", text)
    if match is None:
        return None
    return text[match.end() :].strip()


def command_miss(command: str, data: Mapping[str, Any]) -> str:
    """Why a ``command:`` rule does not take this event ("" if it does)."""
    comment = data.get("comment")
    if not isinstance(comment, str) or command_args(comment, command) is None:
        first = (comment or "").strip().splitlines()[0][:40] if comment else ""
        return f"the comment does not start with {command} (it starts {first!r})"
    if data.get("source") == "gitlab" and data.get("action") not in ("", "create", None):
        return f"the note was {data.get('action')}d, not new"
    return ""


def trust_miss(
    *,
    command: bool,
    min_level: str,
    forks: bool,
    bots: Collection[str],
    data: Mapping[str, Any],
) -> str:
    """Why the sender may not start this rule ("" if it may). ``command``: a command rule."""
    sender = str(data.get("sender") or data.get("actor") or "")
    if data.get("sender_type") == "Bot" and sender not in bots:
        return (
            f"trust: the sender {sender} is a bot (the forge says so), and trust.bots does not "
            "list it"
        )
    if command:
        return _level_miss(min_level, data)
    if not forks and data.get("is_fork") is True:
        return "trust: the pull request comes from a fork, and trust.forks is false"
    return ""


def _level_miss(min_level: str, data: Mapping[str, Any]) -> str:
    allowed = LEVELS.get(min_level)
    if allowed is None:
        return ""
    if data.get("source") == "gitlab":
        return _gitlab_miss(min_level, data)
    association = str(data.get("author_association") or "NONE")
    if association not in allowed:
        return (
            f"trust: the comment's author is {association} on this repository; trust.min "
            f"{min_level} allows {', '.join(sorted(allowed))}"
        )
    return ""


def _gitlab_miss(min_level: str, data: Mapping[str, Any]) -> str:
    """Why a GitLab note's author may not run the command, by its access level."""
    error, level = data.get(ACCESS_ERROR), data.get(ACCESS_LEVEL)
    if error:
        return (
            f"trust: the note author's access level could not be looked up on GitLab "
            f"({error}), so the command is refused"
        )
    if not isinstance(level, int) or isinstance(level, bool):
        return (
            "trust: the note author's GitLab access level is unknown (Mecha asks GitLab's "
            "members API only with a GitLab token in secrets.yml); set trust: {min: anyone} "
            "to let anyone run this command"
        )
    lowest = GITLAB_MIN[min_level]
    if level < lowest:
        return (
            f"trust: the note's author is {level_name(level)} on this GitLab project; "
            f"trust.min {min_level} allows {level_name(lowest)} and up"
        )
    return ""


def level_name(level: int) -> str:
    """``Reporter (20)``: a GitLab access level in words."""
    name = GITLAB_LEVELS.get(level)
    return f"{name} ({level})" if name else f"access level {level}"
