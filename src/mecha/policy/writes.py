"""Writes to a forge that a policy allows: ``Place``, ``Write`` and their ledger keys (pure).

A ``Write`` is one intended change on a forge (a comment, label changes, a commit status,
a commit suggestion, a reaction to a comment) at a ``Place`` (a repository's pull/merge
request or issue). Its ``key`` is deterministic: the same event, worker, action, target
and head commit always give the same key, so the write-back ledger can tell a write that
is done from one that is not, across retries and restarts.

Comments and suggestion reviews carry hidden markers: ``<!-- mecha:worker=NAME -->``
(which worker's sticky comment this is) and ``<!-- mecha:write=KEY -->`` (which write
made it), so a write whose outcome is unknown is found on the forge instead of repeated.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: actions a write can be
ACTIONS = ("comment", "labels", "status", "suggestion", "reaction")
_WORKER_MARK = re.compile(r"<!-- mecha:worker=([A-Za-z0-9_.-]+) -->")
_WRITE_MARK = re.compile(r"<!-- mecha:write=([0-9a-f]{32}) -->")


class WriteState(StrEnum):
    """Where a write stands in the ledger."""

    PLANNED = "planned"  # decided, not tried yet (or waiting for its next attempt)
    CALLING = "calling"  # an attempt started; if found so after a stop, the outcome is unknown
    DONE = "done"  # the forge has it
    FAILED = "failed"  # the forge refused it (a 4xx other than rate limits)
    DEAD = "dead-letter"  # transient failures until the attempts ran out
    DRY_RUN = "dry-run"  # shown, not sent: dry_run policy, or no forge credentials


#: states a write does not leave
FINAL_WRITE_STATES = frozenset(
    {WriteState.DONE, WriteState.FAILED, WriteState.DEAD, WriteState.DRY_RUN}
)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a write goes: a pull/merge request or issue of a repository on one forge."""

    #: "github" or "gitlab"
    forge: str
    #: GitHub: "owner/name"; GitLab: the project's path "group/sub/name"
    repo: str
    #: GitLab's numeric project id when the event had one ("" otherwise); GitHub: ""
    project_id: str = ""
    #: the pull/merge request or issue number (GitLab: iid); 0 when there is none
    number: int = 0
    #: "pull" (pull/merge request) or "issue"
    kind: str = "pull"
    #: the head commit the event saw ("" if none)
    head_sha: str = ""
    base_sha: str = ""
    #: GitHub App installation of the event ("" if none)
    installation_id: str = ""

    @property
    def name(self) -> str:
        """``owner/name#7`` (``!7`` for a GitLab merge request), or just the repo."""
        if not self.number:
            return self.repo
        sign = "!" if self.forge == "gitlab" and self.kind == "pull" else "#"
        return f"{self.repo}{sign}{self.number}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Write:
    """One intended write, as the ledger keeps it."""

    key: str
    worker: str
    #: one of ACTIONS
    action: str
    place: Place
    #: comment: the body (markers are added by the writer); suggestion: the commit message;
    #: reaction: its name as the forge's REST API spells it ("eyes")
    body: str = ""
    #: labels to add and remove
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    #: status: success | failure | pending | error, its description and context
    state: str = ""
    description: str = ""
    context: str = ""
    #: suggestion: the unified diff
    diff: str = ""
    #: comment: edit this worker's one comment on the place instead of adding another
    sticky: bool = True
    #: reaction: the comment it goes on, ``<kind>:<id>`` (``mecha.policy.reactions``)
    subject: str = ""

    @property
    def target(self) -> str:
        """What the write is on: the place, or the commit for a status."""
        if self.action == "status":
            return f"{self.place.repo}@{self.place.head_sha}"
        return self.place.name


def ledger_key(*, event_id: str, worker: str, action: str, target: str, head_sha: str) -> str:
    """The deterministic key of a write: 32 hex characters."""
    text = "\x1f".join((event_id, worker, action, target, head_sha))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def worker_marker(worker: str) -> str:
    """The hidden line naming the worker whose sticky comment this is."""
    return f"<!-- mecha:worker={worker} -->"


def write_marker(key: str) -> str:
    """The hidden line naming the write that made a comment or review."""
    return f"<!-- mecha:write={key} -->"


def marked_body(write: Write, text: str) -> str:
    """``text`` with the write's hidden markers appended (the worker's only when sticky)."""
    marks = [write_marker(write.key)]
    if write.action == "comment" and write.sticky:
        marks.insert(0, worker_marker(write.worker))
    return f"{text.rstrip()}\n\n" + "\n".join(marks)


def marked_worker(body: str) -> str:
    """The worker a body's sticky marker names, "" if none."""
    found = _WORKER_MARK.search(body or "")
    return found[1] if found else ""


def marked_write(body: str) -> str:
    """The write key a body's marker names, "" if none."""
    found = _WRITE_MARK.search(body or "")
    return found[1] if found else ""


def write_json(write: Write) -> dict[str, Any]:
    """The write as the ledger stores it (and the API shows it)."""
    # by hand: dataclasses.asdict deep-copies, and this runs for every planned write
    place = write.place
    return {
        "key": write.key, "worker": write.worker, "action": write.action,
        "place": {
            "forge": place.forge, "repo": place.repo, "project_id": place.project_id,
            "number": place.number, "kind": place.kind, "head_sha": place.head_sha,
            "base_sha": place.base_sha, "installation_id": place.installation_id,
        },
        "body": write.body, "add": list(write.add), "remove": list(write.remove),
        "state": write.state, "description": write.description, "context": write.context,
        "diff": write.diff, "sticky": write.sticky, "subject": write.subject,
    }  # fmt: skip


def write_from_json(data: Mapping[str, Any]) -> Write:
    """A write back from ``write_json``'s form."""
    fields = dict(data)
    fields["place"] = Place(**fields["place"])
    fields["add"], fields["remove"] = tuple(fields["add"]), tuple(fields["remove"])
    return Write(**fields)
