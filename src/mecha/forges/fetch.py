"""One forge API request with a byte limit and a deadline: ``fetch``, and ``FetchError``.

The answer is streamed and reading stops after ``limit`` bytes, so a huge diff cannot use
unbounded memory; ``Answer.complete`` says whether it all came. Every failure (an HTTP
error status, a timeout, a refused connection, an unreadable answer) becomes a FetchError
whose message names the request and carries the forge's own ``message``, never a header:
tokens travel in headers only. A FetchError keeps the answer's headers (``Retry-After``,
``X-RateLimit-*``) and says whether the request never got an answer (``network``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

#: how much of an error answer is read for its message
_ERROR_READ = 64 * 1024
_MESSAGE_MAX = 300
T = TypeVar("T")


class FetchError(Exception):
    """A forge request failed; the message says which and why, without secrets."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        headers: Mapping[str, str] | None = None,
        network: bool = False,
    ) -> None:
        super().__init__(message)
        #: the HTTP status the forge answered, 0 if it did not answer
        self.status = status
        #: the error answer's headers (case-insensitive; empty if there was no answer)
        self.headers = httpx.Headers(headers or {})
        #: True when the request failed on the way: a timeout, a refused or broken connection
        self.network = network


@dataclass(frozen=True)
class Answer:
    """A successful answer, read up to its limit."""

    status: int
    headers: httpx.Headers
    body: bytes
    #: False when reading stopped at the limit
    complete: bool
    #: the ``Link: <...>; rel="next"`` URL, "" if none
    next_url: str = ""

    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self, what: str) -> Any:
        """The body as JSON; FetchError if it was cut at the limit or is not JSON."""
        if not self.complete:
            raise FetchError(f"{what}: the answer is larger than {len(self.body)} bytes")
        try:
            return json.loads(self.body)
        except ValueError:
            raise FetchError(f"{what}: the answer is not JSON") from None


async def fetch(
    http: httpx.AsyncClient,
    url: str,
    *,
    what: str,
    headers: Mapping[str, str],
    limit: int,
    timeout: float,
    method: str = "GET",
    params: Mapping[str, str | int] | httpx.QueryParams | None = None,
    json_body: Any = None,
) -> Answer:
    """``method url``, read up to ``limit`` bytes, all within ``timeout`` seconds.

    ``params``: the query, a mapping or (for a repeated name, ``refs[]``) ``httpx.QueryParams``.

    ``json_body``, when not None, is sent as the JSON request body.
    """
    try:
        request = http.build_request(
            method, url, headers=dict(headers), params=params, json=json_body, timeout=timeout
        )
        async with asyncio.timeout(timeout):
            return await _send(http, request, what, limit)
    except (TimeoutError, httpx.TimeoutException):
        raise FetchError(f"{what} timed out after {timeout:g} s", network=True) from None
    except httpx.ConnectError as exc:
        where = httpx.URL(url).netloc.decode("ascii", errors="replace")
        message = f"{what} failed: cannot connect to {where} ({exc})"
        raise FetchError(message, network=True) from None
    except httpx.HTTPError as exc:
        message = f"{what} failed: {type(exc).__name__}: {exc}"
        raise FetchError(message, network=True) from None
    except httpx.InvalidURL as exc:
        raise FetchError(f"{what} failed: {type(exc).__name__}: {exc}") from None


async def attempt(work: Awaitable[T]) -> tuple[T | None, str]:
    """``(result, "")``, or ``(None, message)`` when ``work`` raised FetchError."""
    try:
        return await work, ""
    except FetchError as exc:
        return None, str(exc)


def same_origin(base_url: str, url: str, what: str) -> str:
    """``url`` if it is on ``base_url``'s scheme, host and port (tokens go with requests)."""
    try:
        here, there = httpx.URL(base_url), httpx.URL(url)
    except httpx.InvalidURL:
        raise FetchError(f"{what}: the next page link is not a URL") from None
    if (here.scheme, here.host, here.port) != (there.scheme, there.host, there.port):
        raise FetchError(f"{what}: the next page is on another host; not followed")
    return url


def scrub(message: str, secrets: list[str]) -> str:
    """``message`` with each secret replaced by ``[REDACTED]``, in case a forge echoed one."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[REDACTED]")
    return message


async def _send(http: httpx.AsyncClient, request: httpx.Request, what: str, limit: int) -> Answer:
    # redirects are not followed: one to another host would take the token header with it
    response = await http.send(request, stream=True, follow_redirects=False)
    try:
        if response.status_code >= 300:
            body, _ = await _read(response, _ERROR_READ)
            message = error_message(response.status_code, body, response.headers)
            raise FetchError(
                f"{what} answered {message}",
                status=response.status_code,
                headers=response.headers,
            )
        body, complete = await _read(response, limit)
        next_url = response.links.get("next", {}).get("url", "")
        return Answer(response.status_code, response.headers, body, complete, next_url)
    finally:
        await response.aclose()


async def _read(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], False
    return b"".join(chunks), True


def error_message(status: int, body: bytes, headers: Mapping[str, str]) -> str:
    """``404: Not Found``: the status and the forge's ``message`` (or the reason phrase)."""
    message = _forge_message(body) or httpx.codes.get_reason_phrase(status) or "error"
    text = " ".join(message.split())
    if len(text) > _MESSAGE_MAX:
        text = text[: _MESSAGE_MAX - 1] + "…"
    return f"{status}: {text}{_rate_limit_note(status, headers)}"


def _forge_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    message = data.get("message") or data.get("error") or ""
    if isinstance(message, str):
        return message
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _rate_limit_note(status: int, headers: Mapping[str, str]) -> str:
    if status not in (403, 429):
        return ""
    retry = headers.get("retry-after", "")
    if retry.isdigit():
        return f" (rate limited; retry after {retry} s)"
    reset = headers.get("x-ratelimit-reset", "") or headers.get("ratelimit-reset", "")
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        when = datetime.fromtimestamp(int(reset), tz=UTC).strftime("%H:%M:%S UTC")
        return f" (rate limited until {when})"
    return ""
