"""Requests to GitHub's REST API with JSON in and out: ``GitHubRest``.

Built with the headers of one sign-in (``Authorization``, media type, API version);
``send`` makes one request with a JSON body, ``items`` reads a list across its pages
(``per_page=100``, then ``Link: rel="next"`` on the same host, at most MAX_PAGES pages).
Failures are ``FetchError``s naming the request, e.g. ``POST /repos/o/r/issues/7/comments``.
"""

from __future__ import annotations

from typing import Any

import httpx

from mecha.forges.fetch import FetchError, fetch, same_origin

#: pages of 100 comments, reviews or files read at most
MAX_PAGES = 30
#: bytes read of one answer (a page of 100 comments of up to 65 536 characters each)
READ_LIMIT = 32 * 1024 * 1024


class GitHubRest:
    """One sign-in's requests to the API at ``api_url``."""

    def __init__(
        self, http: httpx.AsyncClient, api_url: str, headers: dict[str, str], timeout: float
    ) -> None:
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.headers = headers
        self.timeout = timeout

    async def send(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> Any:
        """``method path`` with a JSON body; the answer's JSON (None when it has no body)."""
        what = f"{method} {path}"
        answer = await fetch(
            self.http,
            f"{self.api_url}{path}",
            what=what,
            method=method,
            headers=headers or self.headers,
            json_body=body,
            limit=READ_LIMIT,
            timeout=self.timeout,
        )
        return answer.json(what) if answer.body.strip() else None

    async def items(self, path: str) -> list[dict[str, Any]]:
        """Every item of the list at ``path``, following ``Link: rel="next"``."""
        url = f"{self.api_url}{path}"
        params: dict[str, str | int] | None = {"per_page": 100}
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            what = f"GET {path} (page {page})"
            answer = await fetch(
                self.http,
                url,
                what=what,
                headers=self.headers,
                params=params,
                limit=READ_LIMIT,
                timeout=self.timeout,
            )
            data = answer.json(what)
            if not isinstance(data, list):
                raise FetchError(f"{what}: expected a list")
            found += [item for item in data if isinstance(item, dict)]
            if not answer.next_url:
                break
            url, params = same_origin(self.api_url, answer.next_url, what), None
        return found
