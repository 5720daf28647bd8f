"""A pull request's diff and file list from GitHub's REST API: ``GitHubClient.hydrate``.

* diff: with both SHAs known, ``GET /repos/{o}/{r}/compare/{base}...{head}`` (pinned to
  what the event saw, so a later push cannot change what is reviewed); else
  ``GET /repos/{o}/{r}/pulls/{n}``; both with ``Accept: application/vnd.github.diff``.
  Read up to the cap plus a margin, then cut at file boundaries (``diff_cap``).
* file list: ``GET /repos/{o}/{r}/pulls/{n}/files?per_page=100``, following
  ``Link: rel="next"`` for up to 30 pages (3000 files, GitHub's own limit).
* GitHub refuses a diff of more than 300 files or 20 000 lines (406, ``too_large``): the
  diff is then put together from the file list's per-file patches (GitHub leaves out the
  patch of a binary or very large file; its section then says so).

Nothing here raises for an HTTP or network failure: ``hydrate`` returns a Hydration
whose ``error`` (and ``diff_error``) says what failed, without any token.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from mecha.diff.cap import file_section
from mecha.forges.fetch import FetchError, attempt, fetch, same_origin, scrub
from mecha.forges.github.auth import API_VERSION, JSON_ACCEPT, GitHubAuth
from mecha.forges.hydration import (
    DiffBuilder,
    Hydration,
    RawDiff,
    attr_int,
    build_hydration,
    failed,
)

__all__ = ["DIFF_ACCEPT", "GitHubAuth", "GitHubClient", "Pull", "add_files", "read_pull"]

DIFF_ACCEPT = "application/vnd.github.diff"
#: pages of 100 files: GitHub lists at most 3000 files of a pull request
MAX_FILE_PAGES = 30
#: bytes read past the cap, so files just past it can still be named
READ_MARGIN = 64 * 1024
#: one page of the file list (100 files with their patches)
JSON_LIMIT = 32 * 1024 * 1024
_NAME = re.compile(r"[A-Za-z0-9._-]+")
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
#: GitHub's answer to a diff it will not send
TOO_LARGE = 406
_NO_PATCH = "(GitHub sent no patch for this file: binary, or too large)"


@dataclass(frozen=True)
class Pull:
    """The pull request an event names."""

    owner: str
    repo: str
    number: int
    base_sha: str
    head_sha: str
    installation_id: str

    @property
    def pinned(self) -> bool:
        return bool(self.base_sha and self.head_sha)

    @property
    def path(self) -> str:
        return f"/repos/{quote(self.owner, safe='')}/{quote(self.repo, safe='')}"

    @property
    def name(self) -> str:
        return f"{self.owner}/{self.repo}#{self.number}"


class GitHubClient:
    """Fetches what a pull request event's prompt may need from GitHub."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_url: str = "https://api.github.com",
        auth: GitHubAuth,
        max_diff_bytes: int = 500_000,
        timeout: float = 30.0,
    ) -> None:
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.auth = auth
        self.max_diff_bytes = max_diff_bytes
        self.timeout = timeout

    async def hydrate(self, attrs: Mapping[str, Any]) -> Hydration:
        """Diff and file list for the pull request ``attrs`` describe; errors in the result."""
        pull = read_pull(attrs)
        if isinstance(pull, str):
            return failed(pull)
        try:
            headers = await self.headers(pull)
        except FetchError as exc:
            return failed(scrub(str(exc), self.auth.secrets()))
        (diff, diff_error), (files, files_error) = await asyncio.gather(
            attempt(self._diff(pull, headers)), attempt(self._files(pull, headers))
        )
        if diff is None and not diff_error and files is not None:
            diff = files.diff()
        errors = [scrub(error, self.auth.secrets()) for error in (diff_error, files_error)]
        names = None if files is None else files.files
        return build_hydration(diff, names, errors, max_bytes=self.max_diff_bytes)

    async def headers(self, pull: Pull) -> dict[str, str]:
        """The headers of a request about ``pull`` (an App's token for its installation);
        FetchError if no token can be had."""
        authorization = await self.auth.authorization(
            self.http,
            api_url=self.api_url,
            installation_id=pull.installation_id,
            timeout=self.timeout,
        )
        return {
            "Authorization": authorization,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "mecha",
        }

    async def _diff(self, pull: Pull, headers: dict[str, str]) -> RawDiff | None:
        """The diff GitHub sends; None when it is too large to send (and files can stand in)."""
        if pull.pinned:
            url = f"{self.api_url}{pull.path}/compare/{pull.base_sha}...{pull.head_sha}"
            what = f"GitHub compare {pull.owner}/{pull.repo} {pull.base_sha}...{pull.head_sha}"
        else:
            url = f"{self.api_url}{pull.path}/pulls/{pull.number}"
            what = f"GitHub pull request {pull.name} diff"
        try:
            answer = await fetch(
                self.http,
                url,
                what=what,
                headers={**headers, "Accept": DIFF_ACCEPT},
                limit=self.max_diff_bytes + READ_MARGIN,
                timeout=self.timeout,
            )
        except FetchError as exc:
            if exc.status == TOO_LARGE and pull.number:
                return None
            raise
        return RawDiff(answer.text(), answer.complete)

    async def _files(self, pull: Pull, headers: dict[str, str]) -> DiffBuilder | None:
        """Every file's name, and their patches as a diff up to the cap."""
        if not pull.number:
            return None
        url = f"{self.api_url}{pull.path}/pulls/{pull.number}/files"
        params: dict[str, str | int] | None = {"per_page": 100}
        files = DiffBuilder(self.max_diff_bytes + READ_MARGIN)
        for page in range(1, MAX_FILE_PAGES + 1):
            what = f"GitHub pull request {pull.name} files (page {page})"
            answer = await fetch(
                self.http,
                url,
                what=what,
                headers={**headers, "Accept": JSON_ACCEPT},
                params=params,
                limit=JSON_LIMIT,
                timeout=self.timeout,
            )
            add_files(files, answer.json(what), what)
            if not answer.next_url:
                break
            url, params = same_origin(self.api_url, answer.next_url, what), None
        return files


def add_files(files: DiffBuilder, data: Any, what: str) -> None:
    if not isinstance(data, list):
        raise FetchError(f"{what}: expected a list of files")
    for item in data:
        if isinstance(item, dict):
            files.add(str(item.get("filename", "")), partial(_file_section, item))


def _file_section(item: Mapping[str, Any]) -> str:
    new = str(item.get("filename", ""))
    old = str(item.get("previous_filename") or new)
    status = str(item.get("status", "modified"))
    note = _NO_PATCH if status != "renamed" or item.get("changes") else ""
    return file_section(old, new, str(item.get("patch") or ""), status=status, note=note)


def read_pull(attrs: Mapping[str, Any]) -> Pull | str:
    """The pull request ``attrs`` name, or why they name none."""
    owner, repo = str(attrs.get("repo_owner") or ""), str(attrs.get("repo_name") or "")
    if not (_NAME.fullmatch(owner) and _NAME.fullmatch(repo)) or {owner, repo} & {".", ".."}:
        return "GitHub: the event has no usable repo_owner/repo_name; nothing to fetch"
    base, head = (_sha(attrs.get(key)) for key in ("base_sha", "head_sha"))
    number = attr_int(attrs.get("number"))
    if not number and not (base and head):
        return "GitHub: the event has no pull request number and no base/head SHAs"
    installation = attr_int(attrs.get("installation_id"))
    return Pull(owner, repo, number, base, head, str(installation or ""))


def _sha(value: Any) -> str:
    text = str(value or "")
    return text if _SHA.fullmatch(text) else ""
