"""The write side of the GitLab emulator: labels, commit statuses, ``/user``, and (from
``forge_gitlab_notes``) notes and diff threads.

``GitLabWrites`` is mixed into ``GitLabState``; under ``/gitlab/api/v4`` it serves, besides
the routes of ``GitLabNotes``:

* ``PUT /projects/:id/(merge_requests|issues)/:iid``: ``labels`` (replace), ``add_labels``,
  ``remove_labels`` (comma-separated strings or lists) → the object with its ``labels``
* ``GET /projects/:id/issues/:iid``
* ``POST /projects/:id/statuses/:sha``: ``state`` pending|running|success|failed|canceled|
  skipped, ``name`` (or ``context``, default "default"), ``description``; re-posting the
  state a live (pending or running) status already holds is GitLab's 400 ``Cannot
  transition status via :enqueue from :pending ...``; an unknown commit is 404
* ``GET /user``

Bodies may be JSON or a form (``position[new_line]=3``); query parameters count too. A
missing parameter is ``{"error": "body is missing"}``, a model error ``{"message": "400
Bad request - Note {...}"}``, as GitLab words them. Authors come from the token
(``GitLabNotes.add_user``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mecha.testing.forge.gitlab.notes import API, GitLabNotes, Noteable, Route
from mecha.testing.forge.gitlab.rules import (
    STATES,
    bad_param,
    gitlab_message,
    label_list,
    read_params,
    request_token,
    status_refusal,
    timestamp,
    user_json,
)
from mecha.testing.forge.wire import Call, Reply, json_reply

if TYPE_CHECKING:
    from mecha.testing.forge.gitlab.emulator import Project

_UPDATABLE = {
    "merge_request": "title, target_branch, assignee_id, assignee_ids, reviewer_ids, "
    "milestone_id, labels, add_labels, remove_labels, description, state_event, "
    "remove_source_branch, squash, discussion_locked",
    "issue": "assignee_id, assignee_ids, confidential, description, discussion_locked, "
    "due_date, labels, add_labels, remove_labels, milestone_id, state_event, title",
}


class GitLabWrites(GitLabNotes):
    """The write-side state and routes of ``GitLabState`` (a mixin; use its lock)."""

    if TYPE_CHECKING:

        def project(self, path: str, project_id: int | None = None) -> Project: ...

    def __init__(self) -> None:
        super().__init__()
        #: (project id, sha) -> commit statuses, oldest first
        self.commit_statuses: dict[tuple[int, str], list[dict[str, Any]]] = {}

    def write_routes(self) -> list[Route]:
        """The routes above and those of ``GitLabNotes``, for ``GitLabState.routes``."""
        at, either = rf"{API}/projects/([^/]+)", "(?:merge_requests|issues)"
        return [
            *self.note_routes(),
            ("PUT", re.compile(rf"{at}/{either}/(\d+)"), self._update),
            ("GET", re.compile(rf"{at}/issues/(\d+)"), self._get_issue),
            ("POST", re.compile(rf"{at}/statuses/()[^/]+"), self._post_status),
        ]

    def unrouted(self, call: Call) -> Reply:
        """``GET /user``, or GitLab's 404 for any other path no route took."""
        if call.method != "GET" or call.path != f"{API}/user":
            return gitlab_message(404, "404 Not Found")
        if self.tokens and request_token(call) not in self.tokens:
            return gitlab_message(401, "401 Unauthorized")
        return json_reply(user_json(self._author(call), call.base_url))

    # --- seeding and reading, for tests ---------------------------------------------------

    def add_issue(
        self,
        project: str,
        iid: int,
        *,
        title: str = "",
        labels: Iterable[str] = (),
        project_id: int | None = None,
    ) -> int:
        """Seed an issue in the project at path ``project``; its project id."""
        found = self.project(project, project_id)
        self.noteables[(found.id, "issue", iid)] = Noteable("issue", iid, title, list(labels))
        return found.id

    def labels(self, project: str | int, iid: int, kind: str = "merge_request") -> list[str]:
        """The merge request's (or issue's) labels."""
        return sorted(self._side(project, iid, kind).labels)

    def statuses(self, project: str | int, sha: str) -> list[dict[str, Any]]:
        """The commit statuses on ``sha``, as GitLab answered them, oldest first."""
        return list(self.commit_statuses.get((self._lookup(project).id, sha), []))

    # --- labels -----------------------------------------------------------------------------

    def _update(self, call: Call, project: Project, iid: int) -> Reply:
        asked = self._asked(call, project, iid)
        if isinstance(asked, Reply):
            return asked
        side, params = asked
        known = set(_UPDATABLE[side.kind].split(", "))
        if not known & params.keys():
            return bad_param(
                f"{_UPDATABLE[side.kind]} are missing, at least one parameter must be provided"
            )
        if "labels" in params:
            side.labels = label_list(params["labels"])
        side.labels += [
            name for name in label_list(params.get("add_labels")) if name not in side.labels
        ]
        gone = set(label_list(params.get("remove_labels")))
        side.labels = [name for name in side.labels if name not in gone]
        if isinstance(params.get("title"), str):
            side.title = params["title"]
        return json_reply(_object_json(project, side, call.base_url))

    def _get_issue(self, call: Call, project: Project, iid: int) -> Reply:
        side = self._noteable_of(call, project, iid)
        if isinstance(side, Reply):
            return side
        return json_reply(_object_json(project, side, call.base_url))

    # --- commit statuses --------------------------------------------------------------------

    def _post_status(self, call: Call, project: Project, _: int) -> Reply:
        params = read_params(call)
        if isinstance(params, Reply):
            return params
        sha, state = call.path.rsplit("/", 1)[1], params.get("state")
        if state not in STATES:
            return bad_param(
                f"state {'is missing' if state is None else 'does not have a valid value'}"
            )
        known = {s for r in project.merge_requests.values() for s in (r.base_sha, r.head_sha)}
        if sha not in known:
            return gitlab_message(404, "404 Commit Not Found")
        name = str(params.get("name") or params.get("context") or "default")
        records = self.commit_statuses.setdefault((project.id, sha), [])
        live = next(
            (r for r in reversed(records) if r["name"] == name and r["status"] in STATES[:2]),
            None,
        )
        refusal = status_refusal(live["status"], state) if live is not None else ""
        if refusal:
            return gitlab_message(400, refusal)
        if live is None:
            live = self._status(sha, name, call)
            records.append(live)
        live["status"] = state
        if "description" in params:
            live["description"] = params["description"]
        return json_reply(live, 201)

    def _status(self, sha: str, name: str, call: Call) -> dict[str, Any]:
        return {
            "id": next(self._ids), "sha": sha, "ref": "feature", "status": "", "name": name,
            "target_url": None, "description": None, "created_at": timestamp(), "started_at": None,
            "finished_at": None, "allow_failure": False, "coverage": None,
            "author": user_json(self._author(call), call.base_url),
        }  # fmt: skip


def _object_json(project: Project, side: Noteable, base_url: str) -> dict[str, Any]:
    """A merge request or issue as a ``PUT`` answers it (the fields a writer reads)."""
    where = "merge_requests" if side.kind == "merge_request" else "issues"
    return {
        "id": project.id * 1000 + side.iid, "iid": side.iid, "project_id": project.id,
        "title": side.title or f"{side.kind.replace('_', ' ').capitalize()} {side.iid}",
        "state": "opened", "labels": sorted(side.labels),
        "web_url": f"{base_url}/{project.path}/-/{where}/{side.iid}",
    }  # fmt: skip
