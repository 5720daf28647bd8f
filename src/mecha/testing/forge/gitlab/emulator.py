"""The GitLab half of the forge API emulator: merge requests, their diffs, compare.

Served under ``/gitlab`` (an instance's base URL), API under ``/gitlab/api/v4``:

* ``GET /projects/:id/merge_requests/:iid``: JSON with ``diff_refs``
* ``GET /projects/:id/merge_requests/:iid/diffs``: ``per_page`` (default 20, at most 100),
  ``page``; ``X-Page``, ``X-Per-Page``, ``X-Next-Page``, ``X-Prev-Page``, ``X-Total``,
  ``X-Total-Pages`` and ``Link`` headers, as GitLab sends
* ``GET /projects/:id/repository/compare?from=&to=&straight=``: ``{"commit", "commits",
  "diffs", "compare_timeout", ...}`` for a seeded merge request's base and head SHAs, or
  any two commits of the project's ``CommitGraph`` (a merge request pushed to or
  force-pushed); ``GET /projects/:id/repository/merge_base?refs[]=&refs[]=``: see
  ``compare.py``

The write side (labels, commit statuses, ``/user``) is in ``forge_gitlab_write``, its
notes and diff threads in ``forge_gitlab_notes``, project members and award emoji in
``forge_gitlab_members`` (``GitLabState.people``). ``:id`` is the project's number or its
URL-encoded path. With any token configured, requests need ``PRIVATE-TOKEN: <token>`` or
``Authorization: Bearer <token>``, else 401 ``{"message": "401 Unauthorized"}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from mecha.testing.forge.commits import CommitGraph
from mecha.testing.forge.gitlab.compare import compare_reply, merge_base_reply
from mecha.testing.forge.gitlab.members import GitLabPeople
from mecha.testing.forge.gitlab.rules import page_headers, request_token
from mecha.testing.forge.gitlab.write import GitLabWrites
from mecha.testing.forge.wire import Call, FileChange, Reply, json_reply, paginate

API = "/api/v4"


@dataclass
class MergeRequest:
    """A seeded merge request."""

    iid: int
    base_sha: str
    head_sha: str
    files: list[FileChange] = field(default_factory=list)
    title: str = ""


@dataclass
class Project:
    """A seeded project and its merge requests."""

    id: int
    path: str
    merge_requests: dict[int, MergeRequest] = field(default_factory=dict)
    #: its commits (seeded merge requests and their pushes)
    commits: CommitGraph = field(default_factory=CommitGraph)


def gitlab_error(status: int, message: str) -> Reply:
    """GitLab's error shape: ``{"message": "404 Not found"}``."""
    return json_reply({"message": message}, status)


class GitLabState(GitLabWrites):
    """Everything the GitLab half knows; change it only under the emulator's lock."""

    def __init__(self) -> None:
        super().__init__()
        self.projects: dict[int, Project] = {}
        #: accepted tokens (PRIVATE-TOKEN or Bearer)
        self.tokens: set[str] = set()
        project = r"/projects/([^/]+)"
        self.routes: list[tuple[str, re.Pattern[str], Callable[[Call, Project, int], Reply]]] = [
            ("GET", re.compile(rf"{API}{project}/merge_requests/(\d+)"), self._merge_request),
            ("GET", re.compile(rf"{API}{project}/merge_requests/(\d+)/diffs"), self._diffs),
            ("GET", re.compile(rf"{API}{project}/repository/compare()"), self._compare),
            ("GET", re.compile(rf"{API}{project}/repository/merge_base()"), self._merge_base),
            *self.write_routes(),
        ]
        #: project members and award emoji on notes
        self.people = GitLabPeople(self)
        self.routes += self.people.routes()

    def project(self, path: str, project_id: int | None = None) -> Project:
        """The project at ``path``, made (with ``project_id`` or the next free id) if new."""
        for known in self.projects.values():
            if known.path == path:
                return known
        number = project_id or max(self.projects, default=1000) + 1
        self.projects[number] = Project(number, path)
        return self.projects[number]

    def handle(self, call: Call) -> Reply:
        """Answer ``call`` as GitLab would."""
        for method, pattern, route in self.routes:
            match = pattern.fullmatch(call.path)
            if match and method == call.method:
                if self.tokens and request_token(call) not in self.tokens:
                    return gitlab_error(401, "401 Unauthorized")
                project = self._find(unquote(match[1]))
                if project is None:
                    return gitlab_error(404, "404 Project Not Found")
                return route(call, project, int(match[2] or 0))
        return self.unrouted(call)

    def _find(self, key: str) -> Project | None:
        if key.isdigit():
            return self.projects.get(int(key))
        return next((p for p in self.projects.values() if p.path == key), None)

    def _merge_request(self, call: Call, project: Project, iid: int) -> Reply:
        request = project.merge_requests.get(iid)
        if request is None:
            return gitlab_error(404, "404 Not found")
        return json_reply(_merge_request_json(project, request, call.base_url))

    def _diffs(self, call: Call, project: Project, iid: int) -> Reply:
        request = project.merge_requests.get(iid)
        if request is None:
            return gitlab_error(404, "404 Not found")
        items, page = paginate(request.files, call, default=20, maximum=100)
        return json_reply([change_json(c) for c in items], headers=page_headers(call, page))

    def _compare(self, call: Call, project: Project, _: int) -> Reply:
        base, head = call.query.get("from", ""), call.query.get("to", "")
        if not base or not head:
            return json_reply({"error": "from is missing, to is missing"}, 400)
        request = next(
            (
                r
                for r in project.merge_requests.values()
                if (r.base_sha, r.head_sha) == (base, head)
            ),
            None,
        )
        if request is None:
            return compare_reply(project.commits, call, project.path, change_json)
        commit = {"id": head, "short_id": head[:8], "title": request.title or "change"}
        return json_reply(
            {
                "commit": commit,
                "commits": [commit],
                "diffs": [change_json(change) for change in request.files],
                "compare_timeout": False,
                "compare_same_ref": base == head,
                "web_url": f"{call.base_url}/{project.path}/-/compare/{base}...{head}",
            }
        )

    def _merge_base(self, call: Call, project: Project, _: int) -> Reply:
        return merge_base_reply(project.commits, call, project.path)


def change_json(change: FileChange) -> dict[str, Any]:
    """One change as GitLab's diffs endpoints list it."""
    return {
        "old_path": change.old_name,
        "new_path": change.filename,
        "a_mode": "0" if change.status == "added" else "100644",
        "b_mode": "0" if change.status == "removed" else "100644",
        "new_file": change.status == "added",
        "renamed_file": change.status == "renamed",
        "deleted_file": change.status == "removed",
        "generated_file": False,
        "diff": change.patch,
    }


def _merge_request_json(project: Project, request: MergeRequest, base_url: str) -> dict[str, Any]:
    return {
        "id": project.id * 1000 + request.iid,
        "iid": request.iid,
        "project_id": project.id,
        "title": request.title or f"Merge request {request.iid}",
        "state": "opened",
        "source_branch": "feature",
        "target_branch": "main",
        "sha": request.head_sha,
        "diff_refs": {
            "base_sha": request.base_sha,
            "head_sha": request.head_sha,
            "start_sha": request.base_sha,
        },
        "web_url": f"{base_url}/{project.path}/-/merge_requests/{request.iid}",
    }
