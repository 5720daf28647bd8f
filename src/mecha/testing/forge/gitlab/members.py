"""Project members and award emoji of the GitLab emulator: ``GitLabPeople``.

Under ``/gitlab/api/v4``, in GitLab's wire format:

* ``GET /projects/:id/members/all/:user_id``: the member (inherited memberships included,
  as ``all`` means) with ``access_level`` (10 guest, 15 planner, 20 reporter, 30 developer,
  40 maintainer, 50 owner), or 404 ``{"message": "404 Not found"}`` for a user who is not one
* ``GET|POST /projects/:id/(merge_requests|issues)/:iid/notes/:note_id/award_emoji``:
  ``{"name": "eyes"}`` → 201 with the award (``awardable_type: "Note"``); the same user
  giving the same name to the same note again is GitLab's 404 ``"404 Award Emoji Name has
  already been taken Not Found"``; an unknown name is 404 too; a note that is not there,
  ``404 Note Not Found``

A user's id is ``user_id(username)``, the id ``user_json`` gives the same name everywhere.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING, Any

from mecha.testing.forge.gitlab.rules import (
    bad_param,
    gitlab_message,
    read_params,
    timestamp,
    user_json,
)
from mecha.testing.forge.wire import Call, Reply, json_reply

if TYPE_CHECKING:
    from mecha.testing.forge.gitlab.emulator import Project
    from mecha.testing.forge.gitlab.notes import GitLabNotes, Route

API = "/api/v4"
#: the award names the emulator knows (GitLab knows every emoji; these are the usual ones)
EMOJI = frozenset({"eyes", "thumbsup", "thumbsdown", "tada", "rocket", "heart", "smile"})


def user_id(username: str) -> int:
    """The id the emulator gives ``username`` (as ``user_json`` shows it)."""
    return zlib.crc32(username.encode("utf-8")) % 1_000_000


class GitLabPeople:
    """Who belongs to which project, and the award emoji given to notes."""

    def __init__(self, notes: GitLabNotes) -> None:
        self._notes = notes
        #: (project id, user id) -> (username, access level)
        self.members: dict[tuple[int, int], tuple[str, int]] = {}
        #: (project id, note id) -> [(username, name, award id)], oldest first
        self.awards: dict[tuple[int, int], list[tuple[str, str, int]]] = {}
        self._next = 5000

    def routes(self) -> list[Route]:
        """The routes above, for ``GitLabState.routes``."""
        at = rf"{API}/projects/([^/]+)"
        award = re.compile(rf"{at}/(?:merge_requests|issues)/(\d+)/notes/\d+/award_emoji")
        return [
            ("GET", re.compile(rf"{at}/members/all/(\d+)"), self._member),
            ("GET", award, self._list_awards),
            ("POST", award, self._award),
        ]

    # --- seeding and reading, for tests ---------------------------------------------------

    def add_member(self, project_id: int, username: str, access_level: int) -> int:
        """Make ``username`` a member of the project with ``access_level``; the user's id."""
        number = user_id(username)
        self.members[(project_id, number)] = (username, access_level)
        return number

    def awarded(self, project_id: int, note_id: int) -> list[tuple[str, str]]:
        """(username, name) of every award emoji on a note, oldest first."""
        return [(user, name) for user, name, _ in self.awards.get((project_id, note_id), [])]

    # --- routes -----------------------------------------------------------------------------

    def _member(self, call: Call, project: Project, number: int) -> Reply:
        found = self.members.get((project.id, number))
        if found is None:
            return gitlab_message(404, "404 Not found")
        username, level = found
        data: dict[str, Any] = {
            **user_json(username, call.base_url), "id": number, "access_level": level,
            "created_at": timestamp(), "expires_at": None, "membership_state": "active",
        }  # fmt: skip
        return json_reply(data)

    def _list_awards(self, call: Call, project: Project, iid: int) -> Reply:
        note_id = self._note(call, project, iid)
        if isinstance(note_id, Reply):
            return note_id
        given = self.awards.get((project.id, note_id), [])
        return json_reply([_award_json(award, note_id, call) for award in given])

    def _award(self, call: Call, project: Project, iid: int) -> Reply:
        note_id = self._note(call, project, iid)
        if isinstance(note_id, Reply):
            return note_id
        params = read_params(call)
        if isinstance(params, Reply):
            return params
        name = params.get("name")
        if not isinstance(name, str):
            return bad_param("name is missing")
        if name not in EMOJI:
            return gitlab_message(404, "404 Award Emoji Name is not a valid emoji name Not Found")
        user = self._notes._author(call)
        given = self.awards.setdefault((project.id, note_id), [])
        if any((who, what) == (user, name) for who, what, _ in given):
            return gitlab_message(404, "404 Award Emoji Name has already been taken Not Found")
        self._next += 1
        given.append((user, name, self._next))
        return json_reply(_award_json(given[-1], note_id, call), 201)

    def _note(self, call: Call, project: Project, iid: int) -> int | Reply:
        """The note the path names, on its merge request or issue, or GitLab's 404."""
        side = self._notes._noteable_of(call, project, iid)
        if isinstance(side, Reply):
            return side
        note_id = int(call.path.split("/")[8])
        if not any(note.id == note_id for note in side.notes):
            return gitlab_message(404, "404 Note Not Found")
        return note_id


def _award_json(award: tuple[str, str, int], note_id: int, call: Call) -> dict[str, Any]:
    user, name, number = award
    when = timestamp()
    return {
        "id": number, "name": name, "user": user_json(user, call.base_url),
        "created_at": when, "updated_at": when, "awardable_id": note_id,
        "awardable_type": "Note", "url": None,
    }  # fmt: skip
