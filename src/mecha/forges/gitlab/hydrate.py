"""A merge request's diff and file list from GitLab's REST API: ``GitLabClient.hydrate``.

* With both SHAs known: ``GET /projects/:id/repository/compare?from=base&to=head&straight=false``.
  ``straight=false`` (GitLab's default, written out) compares from the merge base of the two
  (``git diff base...head``), which is what a merge request's Changes tab shows; ``true``
  would also show, reversed, everything merged into the target branch since the MR branched.
  Pinned to the SHAs, so a later push cannot change what is reviewed.
* Otherwise: ``GET /projects/:id/merge_requests/:iid/diffs``, page by page (``X-Next-Page``,
  else ``Link: rel="next"``). Pages hold 30 changes: GitLab versions before 17.11 answer
  500 to this endpoint when ``per_page`` is above 30.

The project is ``project_id`` when the event has one, else the URL-encoded
``repo_owner/repo_name``. Each change becomes a ``diff --git a/old b/new`` section of a
unified diff; the file list holds each ``new_path``. Auth: ``PRIVATE-TOKEN``. Nothing here
raises for an HTTP or network failure: errors come back in the Hydration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from mecha.diff.cap import file_section
from mecha.forges.fetch import Answer, FetchError, attempt, fetch, same_origin, scrub
from mecha.forges.gitlab.members import author_access
from mecha.forges.hydration import DiffBuilder, Hydration, attr_int, build_hydration, failed

#: changes per page of merge request diffs (see the module docstring)
PER_PAGE = 30
#: pages read at most: 1200 changes, above GitLab's default limit of 1000 files per diff
MAX_PAGES = 40
#: bytes of diff text kept past the cap, so the files just past it can still be named
READ_MARGIN = 64 * 1024
#: one JSON answer (a page of changes, or a whole comparison)
JSON_LIMIT = 32 * 1024 * 1024
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
_PATH = re.compile(r"[\w.-]+(/[\w.-]+)+")


#: a request's query: a mapping, or pairs for a repeated name (``refs[]``)
Query = Mapping[str, str | int] | httpx.QueryParams | None


@dataclass(frozen=True)
class MergeRequest:
    """The merge request an event names."""

    #: the project's id, or its URL-encoded path
    project: str
    #: how messages name it: the id or the path
    name: str
    iid: int
    base_sha: str
    head_sha: str


class GitLabClient:
    """Fetches what a merge request event's prompt may need from GitLab."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = "https://gitlab.com",
        token: str,
        max_diff_bytes: int = 500_000,
        timeout: float = 30.0,
    ) -> None:
        self.http = http
        self.api_url = base_url.rstrip("/") + "/api/v4"
        self.token = token
        self.max_diff_bytes = max_diff_bytes
        self.timeout = timeout

    async def hydrate(self, attrs: Mapping[str, Any]) -> Hydration:
        """Diff and file list for the merge request ``attrs`` describe; errors in the result."""
        request = read_merge_request(attrs)
        if isinstance(request, str):
            return failed(request)
        collected = DiffBuilder(self.max_diff_bytes + READ_MARGIN)
        if request.base_sha and request.head_sha:
            warning, error = await attempt(self._compare(request, collected))
        else:
            warning, error = await attempt(self._diffs(request, collected))
        if error:
            return failed(scrub(error, [self.token]))
        return build_hydration(
            collected.diff(), collected.files, [warning or ""], max_bytes=self.max_diff_bytes
        )

    async def access(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """The note author's access level on the project (``mecha.forges.gitlab.members``)."""
        return await author_access(
            self.http, api_url=self.api_url, token=self.token, attrs=attrs, timeout=self.timeout
        )

    async def _compare(self, request: MergeRequest, collected: DiffBuilder) -> str:
        """Fills ``collected``; a warning if GitLab says the comparison is incomplete."""
        what = f"GitLab compare {request.name} {request.base_sha}...{request.head_sha}"
        url = f"{self.api_url}/projects/{request.project}/repository/compare"
        params = {"from": request.base_sha, "to": request.head_sha, "straight": "false"}
        answer = await self.get(url, what, params)
        data = answer.json(what)
        if not isinstance(data, dict):
            raise FetchError(f"{what}: expected a comparison")
        add_changes(collected, data.get("diffs"), what)
        if data.get("compare_timeout"):
            return f"{what}: GitLab timed out comparing; the diff may be incomplete"
        return ""

    async def _diffs(self, request: MergeRequest, collected: DiffBuilder) -> str:
        url = f"{self.api_url}/projects/{request.project}/merge_requests/{request.iid}/diffs"
        params: dict[str, str | int] | None = {"per_page": PER_PAGE, "page": 1}
        for page in range(1, MAX_PAGES + 1):
            what = f"GitLab merge request {request.name}!{request.iid} diffs (page {page})"
            answer = await self.get(url, what, params)
            add_changes(collected, answer.json(what), what)
            next_page = answer.headers.get("x-next-page", "")
            if next_page.isdigit():
                params = {"per_page": PER_PAGE, "page": int(next_page)}
            elif answer.next_url:
                url, params = same_origin(self.api_url, answer.next_url, what), None
            else:
                break
        return ""

    async def get(self, url: str, what: str, params: Query) -> Answer:
        """``GET url`` with the token; FetchError if it fails."""
        headers = {"PRIVATE-TOKEN": self.token, "Accept": "application/json"}
        headers["User-Agent"] = "mecha"
        return await fetch(
            self.http,
            url,
            what=what,
            headers=headers,
            params=params,
            limit=JSON_LIMIT,
            timeout=self.timeout,
        )


def change_section(change: Mapping[str, Any]) -> str:
    """One change of GitLab's API as a ``diff --git`` section of a unified diff."""
    old = str(change.get("old_path") or change.get("new_path") or "")
    new = str(change.get("new_path") or old)
    status = "modified"
    for flag, name in (("new_file", "added"), ("deleted_file", "removed")):
        status = name if change.get(flag) else status
    if change.get("renamed_file") and status == "modified":
        status = "renamed"
    large = change.get("too_large") or change.get("collapsed")
    note = "(GitLab did not send this file's diff: it is too large)" if large else ""
    return file_section(old, new, str(change.get("diff") or ""), status=status, note=note)


def add_changes(collected: DiffBuilder, changes: Any, what: str) -> None:
    if not isinstance(changes, list):
        raise FetchError(f"{what}: expected a list of changes")
    for change in changes:
        if isinstance(change, dict):
            name = str(change.get("new_path") or change.get("old_path") or "")
            collected.add(name, partial(change_section, change))


def read_merge_request(attrs: Mapping[str, Any]) -> MergeRequest | str:
    """The merge request ``attrs`` name, or why they name none."""
    project_id = attr_int(attrs.get("project_id"))
    path = f"{attrs.get('repo_owner') or ''}/{attrs.get('repo_name') or ''}"
    if project_id:
        project = name = str(project_id)
    elif _PATH.fullmatch(path) and ".." not in path:
        project, name = quote(path, safe=""), path
    else:
        return "GitLab: the event has no project_id and no usable repo_owner/repo_name"
    base, head = (_sha(attrs.get(key)) for key in ("base_sha", "head_sha"))
    iid = attr_int(attrs.get("number"))
    if not iid and not (base and head):
        return "GitLab: the event has no merge request number and no base/head SHAs"
    return MergeRequest(project, name, iid, base, head)


def _sha(value: Any) -> str:
    text = str(value or "")
    return text if _SHA.fullmatch(text) else ""
