"""The diff since a worker's last review, from GitLab: ``compare_since``.

GitLab's compare answer has no ``status`` telling a force-push apart, so two requests go
out at once, both pinned to the two SHAs:

* ``GET /projects/:id/repository/merge_base?refs[]=last&refs[]=head``: the last reviewed
  commit is an ancestor of the head exactly when it is their merge base. Another merge
  base, or 404 (no common ancestor), means a force-push rewrote the branch; 400 ("Could
  not find ref") means the commit is gone;
* ``GET /projects/:id/repository/compare?from=last&to=head&straight=false``: the diffs of
  the new commits (404 "Ref Not Found" when a commit is gone; ``compare_timeout`` makes it
  incomplete, and the full diff stands in).

Nothing here raises for an HTTP or network failure: the answer says why the full diff
stands in instead, without the token.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Mapping
from typing import Any

import httpx

from mecha.forges.fetch import Answer, FetchError, scrub
from mecha.forges.gitlab.hydrate import (
    READ_MARGIN,
    GitLabClient,
    MergeRequest,
    add_changes,
    read_merge_request,
)
from mecha.forges.hydration import DiffBuilder, RawDiff
from mecha.forges.incremental import NO_HEAD, Compared, force_pushed, gone

_SHA = re.compile(r"[0-9a-fA-F]{7,64}")


async def compare_since(client: GitLabClient, attrs: Mapping[str, Any], last: str) -> Compared:
    """What changed on the merge request ``attrs`` name since the commit ``last``."""
    request = read_merge_request(attrs)
    if isinstance(request, str):
        return Compared(fallback=request)
    if not request.head_sha:
        return Compared(fallback=NO_HEAD)
    if not _SHA.fullmatch(last):
        return Compared(fallback=f"the last reviewed head {last[:40]!r} is not a commit SHA")
    if last.lower() == request.head_sha.lower():
        return Compared(RawDiff(""))  # nothing new since
    try:
        return await _compare(client, request, last)
    except FetchError as exc:
        return Compared(fallback=f"the comparison failed: {scrub(str(exc), [client.token])}")


async def _compare(client: GitLabClient, request: MergeRequest, last: str) -> Compared:
    head = request.head_sha
    repository = f"{client.api_url}/projects/{request.project}/repository"
    what = f"GitLab {request.name}"
    base, compared = await asyncio.gather(
        _answer(client.get(f"{repository}/merge_base", f"{what} merge base of {last} and {head}",
                           httpx.QueryParams([("refs[]", last), ("refs[]", head)]))),
        _answer(client.get(f"{repository}/compare", f"{what} compare {last}...{head}",
                           {"from": last, "to": head, "straight": "false"})),
    )  # fmt: skip
    if isinstance(base, FetchError):
        if base.status == 400:
            return Compared(fallback=gone(last, "GitLab", "merge base: ref not found"))
        if base.status == 404:
            return Compared(fallback=force_pushed(last, head, "GitLab", "merge base: none"))
        raise base
    commit = base.json(f"{what} merge base")
    found = str(commit.get("id") or "") if isinstance(commit, dict) else ""
    if not found.lower().startswith(last.lower()):
        said = f"merge base: {found[:12] or 'none'}"
        return Compared(fallback=force_pushed(last, head, "GitLab", said))
    if isinstance(compared, FetchError):
        if compared.status == 404:
            return Compared(fallback=gone(last, "GitLab", "compare: 404"))
        raise compared
    data = compared.json(f"{what} compare")
    if not isinstance(data, dict):
        raise FetchError(f"{what} compare: expected a comparison")
    if data.get("compare_timeout"):
        return Compared(fallback="GitLab timed out comparing; the diff may be incomplete")
    collected = DiffBuilder(client.max_diff_bytes + READ_MARGIN)
    add_changes(collected, data.get("diffs"), f"{what} compare")
    return Compared(collected.diff(), collected.files)


async def _answer(work: Awaitable[Answer]) -> Answer | FetchError:
    """The answer, or the FetchError it failed with (both requests are always awaited)."""
    try:
        return await work
    except FetchError as exc:
        return exc
