"""The diff since a worker's last review, from GitHub: ``compare_since``.

``GET /repos/{o}/{r}/compare/{last}...{head}``, both SHAs, never branch names:

1. as JSON (``per_page=1``: the commits paginate, the files come on the first page), for
   ``status``: ``ahead`` (or ``identical``) means the last reviewed commit is an ancestor of
   the head, so the comparison is the new commits; ``diverged`` or ``behind`` mean a
   force-push rewrote the branch. 404 or 422 mean the commit is gone (a force-push, then
   garbage collection). The files' names are the file list;
2. with ``Accept: application/vnd.github.diff``: the unified diff, read up to the cap plus
   a margin. When GitHub will not send it (406, too large) it is put together from the
   JSON's per-file patches.

Nothing here raises for an HTTP or network failure: the answer says why the full diff
stands in instead, without any token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mecha.forges.fetch import FetchError, fetch, scrub
from mecha.forges.github.auth import JSON_ACCEPT
from mecha.forges.github.hydrate import (
    DIFF_ACCEPT,
    JSON_LIMIT,
    READ_MARGIN,
    TOO_LARGE,
    GitHubClient,
    Pull,
    add_files,
    read_pull,
)
from mecha.forges.hydration import DiffBuilder, RawDiff
from mecha.forges.incremental import NO_HEAD, Compared, force_pushed, gone

_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
#: what GitHub answers for a commit it does not have
_GONE = (404, 422)
#: the statuses of a comparison whose base is an ancestor of its head
_FORWARD = ("ahead", "identical")


async def compare_since(client: GitHubClient, attrs: Mapping[str, Any], last: str) -> Compared:
    """What changed on the pull request ``attrs`` name since the commit ``last``."""
    pull = read_pull(attrs)
    if isinstance(pull, str):
        return Compared(fallback=pull)
    if not pull.head_sha:
        return Compared(fallback=NO_HEAD)
    if not _SHA.fullmatch(last):
        return Compared(fallback=f"the last reviewed head {last[:40]!r} is not a commit SHA")
    if last.lower() == pull.head_sha.lower():
        return Compared(RawDiff(""))  # nothing new since
    try:
        return await _compare(client, pull, last)
    except FetchError as exc:
        message = scrub(str(exc), client.auth.secrets())
        return Compared(fallback=f"the comparison failed: {message}")


async def _compare(client: GitHubClient, pull: Pull, last: str) -> Compared:
    headers = await client.headers(pull)
    url = f"{client.api_url}{pull.path}/compare/{last}...{pull.head_sha}"
    what = f"GitHub compare {pull.owner}/{pull.repo} {last}...{pull.head_sha}"
    try:
        answer = await fetch(
            client.http, url, what=what, headers={**headers, "Accept": JSON_ACCEPT},
            params={"per_page": 1}, limit=JSON_LIMIT, timeout=client.timeout,
        )  # fmt: skip
    except FetchError as exc:
        if exc.status in _GONE:
            return Compared(fallback=gone(last, "GitHub", f"answered {exc.status}"))
        raise
    data = answer.json(what)
    if not isinstance(data, dict):
        raise FetchError(f"{what}: expected a comparison")
    status = str(data.get("status") or "")
    if status not in _FORWARD:
        return Compared(fallback=force_pushed(last, pull.head_sha, "GitHub", f"compare: {status}"))
    files = DiffBuilder(client.max_diff_bytes + READ_MARGIN)
    add_files(files, data.get("files") or [], what)
    try:
        diff = await fetch(
            client.http, url, what=f"{what} diff", headers={**headers, "Accept": DIFF_ACCEPT},
            limit=client.max_diff_bytes + READ_MARGIN, timeout=client.timeout,
        )  # fmt: skip
    except FetchError as exc:
        if exc.status != TOO_LARGE:
            raise
        return Compared(files.diff(), files.files)
    return Compared(RawDiff(diff.text(), diff.complete), files.files)
