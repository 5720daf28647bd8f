"""Notes and diff threads of the GitLab emulator, and who writes them.

``GitLabNotes`` is the base of ``GitLabWrites`` (``forge_gitlab_write``), mixed into
``GitLabState``; under ``/gitlab/api/v4`` it serves:

* ``GET /projects/:id/(merge_requests|issues)/:iid/notes``: ``sort`` (asc|desc, default
  desc), ``order_by`` (created_at|updated_at), paginated like the diffs (``X-Next-Page``...)
* ``POST .../notes`` ``{"body"}`` → 201; ``PUT .../notes/:note_id`` ``{"body"}`` → 200, 403
  for another user's note or a system note
* ``GET|POST /projects/:id/merge_requests/:iid/discussions``: a ``position`` is checked
  against the merge request's ``diff_refs`` and diff: an added line takes ``new_line``, a
  removed one ``old_line``, an unchanged one both; anything else is GitLab's 400
  ``Note {:line_code=>[...]}``

Authors come from the token: ``add_user(token, name)``, else ``DEFAULT_USER``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING, Any

from mecha.testing.forge.gitlab.rules import (
    bad_param,
    checked_position,
    gitlab_message,
    note_refused,
    page_headers,
    read_params,
    request_token,
    timestamp,
    user_json,
)
from mecha.testing.forge.wire import Call, Reply, fake_sha, json_reply, paginate

if TYPE_CHECKING:
    from mecha.testing.forge.gitlab.emulator import Project

#: who writes with a token that ``add_user`` did not name
DEFAULT_USER = "mecha-bot"
API = "/api/v4"
Route = tuple[str, re.Pattern[str], Callable[[Call, "Project", int], Reply]]


@dataclass
class Note:
    """A note on a merge request or issue: a comment, a thread's note, or a system note."""

    id: int
    body: str
    author: str
    system: bool = False
    #: None (a comment), "DiscussionNote" or "DiffNote"
    type: str | None = None
    discussion_id: str = ""
    position: dict[str, Any] | None = None
    created_at: str = ""
    updated_at: str = ""
    #: the order of its last change (for ``order_by=updated_at``)
    touched: int = 0


@dataclass
class Noteable:
    """A merge request's or issue's write side."""

    #: "merge_request" or "issue"
    kind: str
    iid: int
    title: str = ""
    labels: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


class GitLabNotes:
    """Notes, threads and users of ``GitLabState`` (a mixin; use its lock)."""

    projects: dict[int, Project]
    tokens: set[str]

    def __init__(self) -> None:
        #: token -> username
        self.users: dict[str, str] = {}
        self.noteables: dict[tuple[int, str, int], Noteable] = {}
        self._ids = count(1001)
        self._ticks = count(1)

    def note_routes(self) -> list[Route]:
        """The routes above, for ``GitLabWrites.write_routes``."""
        at, either = rf"{API}/projects/([^/]+)", "(?:merge_requests|issues)"
        return [
            ("GET", re.compile(rf"{at}/{either}/(\d+)/notes"), self._list_notes),
            ("POST", re.compile(rf"{at}/{either}/(\d+)/notes"), self._post_note),
            ("PUT", re.compile(rf"{at}/{either}/(\d+)/notes/\d+"), self._put_note),
            ("GET", re.compile(rf"{at}/merge_requests/(\d+)/discussions"), self._discussions),
            ("POST", re.compile(rf"{at}/merge_requests/(\d+)/discussions"), self._post_thread),
        ]

    # --- seeding and reading, for tests ---------------------------------------------------

    def add_user(self, token: str, username: str) -> None:
        """Accept ``token`` as ``username``'s."""
        self.tokens.add(token)
        self.users[token] = username

    def add_note(
        self,
        project: str | int,
        iid: int,
        body: str,
        *,
        kind: str = "merge_request",
        author: str = "someone",
        system: bool = False,
    ) -> int:
        """Seed a note (another user's, or a system note); its id."""
        return self._add(self._side(project, iid, kind), body, author, system=system).id

    def notes(self, project: str | int, iid: int, kind: str = "merge_request") -> list[Note]:
        """Every note on the merge request (or issue), oldest first."""
        return list(self._side(project, iid, kind).notes)

    def discussions(self, project: str | int, iid: int) -> list[list[Note]]:
        """The merge request's threads (each its notes), oldest first."""
        return list(_threads(self._side(project, iid, "merge_request")).values())

    def _lookup(self, project: str | int) -> Project:
        key = str(project)
        for known in self.projects.values():
            if key in (known.path, str(known.id)):
                return known
        raise KeyError(f"no GitLab project {project!r} is seeded")

    def _side(self, project: str | int, iid: int, kind: str) -> Noteable:
        found = self._lookup(project)
        side = self._noteable(found, kind, iid)
        if side is None:
            raise KeyError(f"no {kind} {iid} in GitLab project {found.path!r}")
        return side

    # --- notes ------------------------------------------------------------------------------

    def _list_notes(self, call: Call, project: Project, iid: int) -> Reply:
        side = self._noteable_of(call, project, iid)
        if isinstance(side, Reply):
            return side
        order, sort = call.query.get("order_by", "created_at"), call.query.get("sort", "desc")
        if order not in ("created_at", "updated_at") or sort not in ("asc", "desc"):
            wrong = "order_by" if order not in ("created_at", "updated_at") else "sort"
            return bad_param(f"{wrong} does not have a valid value")
        notes = sorted(
            side.notes,
            key=(lambda n: (n.touched, n.id)) if order == "updated_at" else (lambda n: (n.id, 0)),
            reverse=sort == "desc",
        )
        items, page = paginate(notes, call, default=20, maximum=100)
        data = [self._note_json(note, project, side, call) for note in items]
        return json_reply(data, headers=page_headers(call, page))

    def _post_note(self, call: Call, project: Project, iid: int) -> Reply:
        asked = self._asked_body(call, project, iid)
        if isinstance(asked, Reply):
            return asked
        side, _, body = asked
        refused = note_refused(body)
        if refused is not None:
            return refused
        note = self._add(side, body, self._author(call))
        return json_reply(self._note_json(note, project, side, call), 201)

    def _put_note(self, call: Call, project: Project, iid: int) -> Reply:
        asked = self._asked(call, project, iid)
        if isinstance(asked, Reply):
            return asked
        side, params = asked
        body, note_id = params.get("body"), int(call.path.rsplit("/", 1)[1])
        if not isinstance(body, str) or not body.strip():
            return bad_param("body is missing" if body is None else "body is empty")
        note = next((n for n in side.notes if n.id == note_id), None)
        if note is None:
            return gitlab_message(404, "404 Note Not Found")
        if note.system or note.author != self._author(call):
            return gitlab_message(403, "403 Forbidden")
        refused = note_refused(body)
        if refused is not None:
            return refused
        note.body, note.updated_at, note.touched = body, timestamp(), next(self._ticks)
        return json_reply(self._note_json(note, project, side, call))

    def _add(self, side: Noteable, body: str, author: str, **fields: Any) -> Note:
        number, now = next(self._ids), timestamp()
        note = Note(number, body, author, created_at=now, updated_at=now, **fields)
        note.discussion_id = note.discussion_id or fake_sha(f"discussion:{number}")
        note.touched = next(self._ticks)
        side.notes.append(note)
        return note

    def _note_json(self, note: Note, project: Project, side: Noteable, call: Call) -> Any:
        data: dict[str, Any] = {
            "id": note.id, "type": note.type, "body": note.body, "attachment": None,
            "author": user_json(note.author, call.base_url), "created_at": note.created_at,
            "updated_at": note.updated_at, "system": note.system,
            "noteable_id": project.id * 1000 + side.iid,
            "noteable_type": "MergeRequest" if side.kind == "merge_request" else "Issue",
            "project_id": project.id, "noteable_iid": side.iid,
            "resolvable": note.type is not None, "confidential": False, "internal": False,
        }  # fmt: skip
        if note.type is not None:
            data["resolved"] = False
        if note.position is not None:
            data["position"] = note.position
        return data

    # --- diff threads -----------------------------------------------------------------------

    def _discussions(self, call: Call, project: Project, iid: int) -> Reply:
        side = self._noteable_of(call, project, iid)
        if isinstance(side, Reply):
            return side
        items, page = paginate(list(_threads(side).items()), call, default=20, maximum=100)
        data = [self._thread_json(key, notes, project, side, call) for key, notes in items]
        return json_reply(data, headers=page_headers(call, page))

    def _post_thread(self, call: Call, project: Project, iid: int) -> Reply:
        asked = self._asked_body(call, project, iid)
        if isinstance(asked, Reply):
            return asked
        side, params, body = asked
        position = None
        if "position" in params:
            position = checked_position(project.merge_requests[iid], params["position"])
            if isinstance(position, Reply):
                return position
        refused = note_refused(body)
        if refused is not None:
            return refused
        kind = "DiscussionNote" if position is None else "DiffNote"
        note = self._add(side, body, self._author(call), type=kind, position=position)
        data = self._thread_json(note.discussion_id, [note], project, side, call)
        return json_reply(data, 201)

    def _thread_json(
        self, key: str, notes: list[Note], project: Project, side: Noteable, call: Call
    ) -> dict[str, Any]:
        return {
            "id": key,
            "individual_note": notes[0].type is None,
            "notes": [self._note_json(note, project, side, call) for note in notes],
        }

    # --- shared -----------------------------------------------------------------------------

    def _author(self, call: Call) -> str:
        return self.users.get(request_token(call), DEFAULT_USER)

    def _noteable(self, project: Project, kind: str, iid: int) -> Noteable | None:
        key = (project.id, kind, iid)
        if key not in self.noteables and kind == "merge_request" and iid in project.merge_requests:
            title = project.merge_requests[iid].title
            self.noteables[key] = Noteable(kind, iid, title)
        return self.noteables.get(key)

    def _asked(
        self, call: Call, project: Project, iid: int
    ) -> tuple[Noteable, dict[str, Any]] | Reply:
        """The merge request or issue a write names and its parameters, or the 4xx answer."""
        side = self._noteable_of(call, project, iid)
        if isinstance(side, Reply):
            return side
        params = read_params(call)
        return params if isinstance(params, Reply) else (side, params)

    def _asked_body(
        self, call: Call, project: Project, iid: int
    ) -> tuple[Noteable, dict[str, Any], str] | Reply:
        """As ``_asked``, and the ``body`` a new note or thread must have."""
        asked = self._asked(call, project, iid)
        if isinstance(asked, Reply):
            return asked
        side, params = asked
        body = params.get("body")
        if not isinstance(body, str):
            return bad_param("body is missing" if body is None else "body is invalid")
        return side, params, body

    def _noteable_of(self, call: Call, project: Project, iid: int) -> Noteable | Reply:
        kind = "issue" if call.path.split("/")[5] == "issues" else "merge_request"
        side = self._noteable(project, kind, iid)
        if side is None:
            return gitlab_message(
                404, "404 Issue Not Found" if kind == "issue" else "404 Not found"
            )
        return side


def _threads(side: Noteable) -> dict[str, list[Note]]:
    """Notes by thread (a comment is a thread of its own), oldest first."""
    threads: dict[str, list[Note]] = {}
    for note in side.notes:
        threads.setdefault(note.discussion_id, []).append(note)
    return threads
