"""GitLab's REST API as the write-back client calls it: ``GitLabApi``, ``Target``.

``GitLabApi.json`` makes one call (JSON both ways, through ``fetch``: a byte limit, a
deadline, no redirects) and turns every failure into a ``WriteFailure``: no answer, 408,
409 (GitLab's "another update to this commit status is in progress"), 429 and 5xx are
transient, with ``retry_after`` from ``Retry-After`` or ``RateLimit-Reset``; any other
refusal is permanent and carries GitLab's ``message`` or ``error``, made readable
(``{"base": ["is invalid"]}`` → ``base: is invalid``). ``pages`` walks a listing by
``X-Next-Page``; ``whoami`` learns our username (``GET /user``) and keeps it. No message
carries the token.

``Target`` is a merge request or issue as the API names it: the project's numeric id when
the event had one, else its URL-encoded path.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from mecha import waits
from mecha.forges.fetch import Answer, FetchError, fetch, scrub
from mecha.forges.writer import WriteFailure
from mecha.policy.writes import Place, Write

#: items per page of a listing, and the pages read at most
PER_PAGE, MAX_PAGES = 100, 20
_JSON_LIMIT = 32 * 1024 * 1024
_ANSWERED = re.compile(r"(.* answered \d{3}: )([\[{].*?)((?: \(rate limited[^)]*\))?)", re.S)


@dataclass(frozen=True, slots=True)
class Target:
    """A merge request or issue as the API names it."""

    #: /projects/12/merge_requests/5
    path: str
    #: group/app!5, for messages
    name: str


class GitLabApi:
    """One GitLab instance's API, signed in with a token (``PRIVATE-TOKEN``)."""

    def __init__(
        self, http: httpx.AsyncClient, *, base_url: str, token: str, timeout: float = 30.0
    ) -> None:
        self.http = http
        self.api_url = base_url.rstrip("/") + "/api/v4"
        self.token = token
        self.timeout = timeout
        self._username = ""

    async def json(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Any:
        """``method path`` with ``body`` as JSON; the answer's JSON (None if empty)."""
        answer = await self._call(method, path, what, body=body, params=params)
        return self._parsed(answer, what)

    async def pages(
        self, path: str, what: str, params: Mapping[str, str], per_page: int = PER_PAGE
    ) -> AsyncIterator[Any]:
        """Each item of a listing, page by page, reading at most ``MAX_PAGES`` pages."""
        query: dict[str, str | int] = {**params, "per_page": per_page, "page": 1}
        for page in range(1, MAX_PAGES + 1):
            answer = await self._call("GET", path, f"{what} (page {page})", params=query)
            items = self._parsed(answer, f"{what} (page {page})")
            if not isinstance(items, list):
                raise WriteFailure(f"{what} (page {page}): expected a list", transient=False)
            for item in items:
                yield item
            after = answer.headers.get("x-next-page", "")
            if not after.isdigit():
                return
            query["page"] = int(after)

    async def whoami(self) -> tuple[str, str]:
        """``(our username, "")``, or ``("", why it is unknown)``; transient failures raise."""
        if self._username:
            return self._username, ""
        try:
            data = await self.json("GET", "/user", "GitLab GET /user")
        except WriteFailure as failure:
            if failure.transient:
                raise
            return "", failure.message
        name = data.get("username") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            return "", "GitLab GET /user answered no username"
        self._username = name
        return name, ""

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Answer:
        headers = {"PRIVATE-TOKEN": self.token, "Accept": "application/json", "User-Agent": "mecha"}
        try:
            return await fetch(
                self.http, self.api_url + path, what=what, headers=headers, limit=_JSON_LIMIT,
                timeout=self.timeout, method=method, params=params, json_body=body,
            )  # fmt: skip
        except FetchError as exc:
            raise _failure(exc, self.token) from None

    def _parsed(self, answer: Answer, what: str) -> Any:
        if not answer.body:
            return None
        try:
            return answer.json(what)
        except FetchError as exc:
            raise _failure(exc, self.token) from None


def project_of(place: Place) -> str:
    """The project as the API takes it: its id, or its URL-encoded path ("" if neither)."""
    return quote(place.project_id or place.repo, safe="")


def noteables(place: Place) -> str:
    """``merge_requests`` for a pull/merge request place, else ``issues``."""
    return "merge_requests" if place.kind == "pull" else "issues"


def target_of(write: Write) -> Target:
    """The merge request or issue ``write`` is on; a permanent WriteFailure if none."""
    place = write.place
    project = project_of(place)
    if not project:
        raise WriteFailure("GitLab: the event names no project", transient=False)
    if place.number <= 0:
        raise WriteFailure(
            f"GitLab: a {write.action} needs a merge request or issue; {place.name} is neither",
            transient=False,
        )
    return Target(f"/projects/{project}/{noteables(place)}/{place.number}", place.name)


def author_of(note: Any) -> str:
    """The username of a note's author, casefolded ("" if it names none)."""
    author = note.get("author") if isinstance(note, dict) else None
    name = author.get("username") if isinstance(author, dict) else None
    return name.casefold() if isinstance(name, str) else ""


def _failure(exc: FetchError, token: str) -> WriteFailure:
    """A FetchError as a WriteFailure: transient or not, when to retry, a readable message."""
    status = exc.status
    transient = exc.network or status in (408, 409, 429) or status >= 500
    return WriteFailure(
        scrub(_readable(str(exc)), [token]),
        transient=transient,
        retry_after=_retry_after(exc.headers) if transient else None,
        status=status,
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or a date), else ``RateLimit-Reset``; None
    when neither says something sane (the write-back caps it at its ``retry_cap``)."""
    now = time.time()
    said = waits.retry_after(headers.get("retry-after", ""), now)
    if said is not None:
        return said
    return waits.reset_wait(headers.get("ratelimit-reset", ""), now)


def _readable(message: str) -> str:
    """GitLab's structured ``message`` (``{"base": ["is invalid"]}``) as ``base: is invalid``."""
    found = _ANSWERED.fullmatch(message)
    if found is None:
        return message
    try:
        data = json.loads(found[2])
    except ValueError:
        return message
    said = _render(data)
    return f"{found[1]}{said}{found[3]}" if said else message


def _render(data: Any) -> str:
    if isinstance(data, dict):
        said = [(key, _render(value)) for key, value in data.items()]
        return "; ".join(f"{key}: {value}" for key, value in said if value)
    if isinstance(data, list):
        return ", ".join(_render(item) for item in data)
    return "" if data is None else str(data)
