"""A note author's access level on a GitLab project: ``author_access``.

A GitLab note does not say what its author may do on the project, so before a ``command:``
rule's trust is decided (``mecha.worker.trust``), the engine asks:
``GET /projects/:id/members/all/:user_id`` (memberships inherited from groups included).

* 200: ``{"author_access_level": <access_level>}`` (10 guest, 15 planner, 20 reporter, 30
  developer, 40 maintainer, 50 owner)
* 404: the user is no member: ``{"author_access_level": 0}``
* anything else (no answer, 401/403, 5xx after a second try, an answer without a level):
  ``{"author_access_error": what failed}``, and trust refuses the command with it (fail
  closed). Nothing here raises for an HTTP or network failure; no message carries the token.

The user is the note's ``object_attributes.author_id`` (``comment_author_id``); the project
its ``project_id``, else its URL-encoded path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from mecha.forges.fetch import FetchError, fetch, scrub
from mecha.forges.hydration import attr_int

#: the attributes ``author_access`` sets (one of them)
ACCESS_ATTRS = ("author_access_level", "author_access_error")
#: tries of a lookup that failed on the way or with a 5xx/429, and the pause between them
TRIES, PAUSE = 2, 0.5
_LIMIT = 256 * 1024


async def author_access(
    http: httpx.AsyncClient, *, api_url: str, token: str, attrs: Mapping[str, Any],
    timeout: float = 30.0,
) -> dict[str, Any]:  # fmt: skip
    """The note author's access level on its project, or why it is unknown (see above)."""
    user = attr_int(attrs.get("comment_author_id"))
    project = _project(attrs)
    if not user or not project:
        missing = "object_attributes.author_id" if not user else "project.id"
        return {"author_access_error": f"the note's payload has no {missing}"}
    what = f"GitLab GET /projects/{project}/members/all/{user}"
    headers = {"PRIVATE-TOKEN": token, "Accept": "application/json", "User-Agent": "mecha"}
    url = f"{api_url}/projects/{project}/members/all/{user}"
    attempt = 1
    while True:
        try:
            answer = await fetch(http, url, what=what, headers=headers, limit=_LIMIT,
                                 timeout=timeout)  # fmt: skip
            data = answer.json(what)
        except FetchError as exc:
            if exc.status == 404:
                return {"author_access_level": 0}
            transient = exc.network or exc.status == 429 or exc.status >= 500
            if transient and attempt < TRIES:
                attempt += 1
                await asyncio.sleep(PAUSE)
                continue
            return {"author_access_error": scrub(str(exc), [token])}
        level = data.get("access_level") if isinstance(data, dict) else None
        if isinstance(level, int) and not isinstance(level, bool):
            return {"author_access_level": level}
        return {"author_access_error": f"{what}: the answer has no access_level"}


def _project(attrs: Mapping[str, Any]) -> str:
    """The project as the API takes it: its id, else its URL-encoded path ("" if neither)."""
    number = attr_int(attrs.get("project_id"))
    if number:
        return str(number)
    path = "/".join(str(attrs.get(key) or "") for key in ("repo_owner", "repo_name"))
    return quote(path, safe="") if path.strip("/") and ".." not in path else ""
