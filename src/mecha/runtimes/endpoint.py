"""The worker contract as seen from Mecha: ``GET /health`` and ``POST /task`` (upstream §6).

``send_task`` returns the worker's checked ``TaskResult`` or raises ``WorkerFailure``,
which says whether trying again later may help (``transient``). No httpx or orjson
exception escapes. The values (``WorkerFailure``, ``Health``) are in
``mecha.runtimes.contract``; the clients are the caller's (``mecha.app`` makes them), so
this module opens no connection pool of its own. httpx is imported inside the functions
so commands that never talk to a worker stay fast to start.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from mecha import waits
from mecha.duration import format_duration
from mecha.result import ResultError, TaskResult, failure_of, parse_result, quote
from mecha.runtimes.contract import Health, WorkerFailure
from mecha.runtimes.http1 import BodyTooLarge, HTTPError, Pool

if TYPE_CHECKING:
    import httpx

HEALTH_TIMEOUT = 5.0
#: how much of a 503 health answer is read to tell busy from down
HEALTH_BODY = 256
#: the most of a worker's answer Mecha reads (upstream's limit)
MAX_RESULT_BYTES = 10 * 1024 * 1024
#: statuses that mean "the worker or what stands in front of it is busy or restarting"
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
#: how much of an error body a message quotes
DETAIL_LIMIT = 200
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_CAUSES = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed while sending",
    errno.ETIMEDOUT: "connection timed out",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
}


async def probe_each(
    client: httpx.AsyncClient,
    urls: Sequence[str],
    *,
    timeout: float = HEALTH_TIMEOUT,
    api_keys: Sequence[str] = (),
) -> list[Health]:
    """Ask every ``url``/health at once on ``client``; results in the same order.

    ``api_keys``, when given, holds one key per url ("" for none).
    """
    keys = list(api_keys) or [""] * len(urls)
    probes = (
        probe(client, url, timeout=timeout, api_key=key)
        for url, key in zip(urls, keys, strict=True)
    )
    return list(await asyncio.gather(*probes))


async def probe(
    client: httpx.AsyncClient, url: str, *, timeout: float = HEALTH_TIMEOUT, api_key: str = ""
) -> Health:
    """``GET url/health``: OK on 200, UNREACHABLE when nothing answers.

    A 503 is BUSY when its body says busy (stock worker images answer ``busy`` while a task
    runs: the worker is healthy), else UNHEALTHY (e.g. an adapter whose model API is down).
    """
    import httpx

    headers = _auth(api_key)
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request("GET", url.rstrip("/") + "/health", headers=headers)
            response = await client.send(request, stream=True)
            try:
                body = await response.aread() if response.status_code == 503 else b""
            finally:
                await response.aclose()
    except (httpx.HTTPError, httpx.InvalidURL, OSError, UnicodeError):
        return Health.UNREACHABLE
    if response.status_code == 200:
        return Health.OK
    if response.status_code == 503 and b"busy" in body[:HEALTH_BODY].lower():
        return Health.BUSY
    return Health.UNHEALTHY


async def send_task(
    client: Pool,
    endpoint: str,
    *,
    task_id: str,
    prompt: str,
    context: Mapping[str, Any],
    api_key: str = "",
    timeout: float,
) -> TaskResult:
    """POST one task to ``endpoint``/task and check the answer; WorkerFailure if it fails.

    The whole exchange (connect, send, read) takes at most ``timeout`` seconds. ``client``
    is the lean HTTP/1.1 pool (``mecha.runtimes.http1``): the dispatcher's hot path.
    """
    if api_key and not _HEADER_SAFE.fullmatch(api_key):
        raise WorkerFailure(
            "the api_key cannot be sent in an HTTP header: it has spaces, control "
            "characters or characters outside ASCII",
            transient=False,
            hint="check the worker's api_key (copy-paste often adds a newline)",
        )
    url = endpoint.rstrip("/") + "/task"
    body = orjson.dumps({"id": task_id, "prompt": prompt, "context": dict(context)})
    headers = {"Content-Type": "application/json", **_auth(api_key)}
    status, answer_headers, raw = await _exchange(client, url, body, headers, timeout)
    return _judge(url, status, answer_headers, raw, sent_key=bool(api_key))


def _auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def _exchange(
    client: Pool, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, Mapping[str, str], bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WorkerFailure(
            f"cannot send a task to {url}: not an http:// or https:// URL",
            transient=False,
            hint="a worker endpoint is an http:// or https:// URL, e.g. http://127.0.0.1:8080",
        )
    try:
        async with asyncio.timeout(timeout):
            answer = await client.request(
                "POST", url, body=body, headers=headers, limit=MAX_RESULT_BYTES
            )
    except TimeoutError:
        raise WorkerFailure(
            f"no answer from {url} within {format_duration(timeout)}",
            transient=True,
            hint="the worker may be overloaded or stuck; raise the worker's timeout if its "
            "tasks take longer",
        ) from None
    except BodyTooLarge as exc:
        raise _too_large(exc.status) from None
    except HTTPError as exc:
        raise WorkerFailure(
            f"could not reach {url}: {transport_cause(exc)}",
            transient=True,
            hint="check that the worker is running and that its endpoint is right",
        ) from None
    return answer.status, answer.headers, answer.body


def _too_large(status: int) -> WorkerFailure:
    return WorkerFailure(
        f"the worker's answer is larger than {MAX_RESULT_BYTES // (1024 * 1024)} MB",
        transient=False,
        status=status,
        hint="a worker answers a short result; put long output in a file or a commit",
    )


def transport_cause(exc: BaseException) -> str:
    """The root cause of a transport error in a few words ("connection refused")."""
    seen: BaseException | None = exc
    deepest = str(exc)
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return f"the host name does not resolve ({seen.strerror or seen})"
        if isinstance(seen, OSError) and seen.errno in _CAUSES:
            return _CAUSES[seen.errno]
        deepest = str(seen) or deepest
        seen = seen.__cause__ or seen.__context__
    if "without sending a response" in deepest:
        return "the connection was closed without an answer"
    return deepest.rstrip(".") or type(exc).__name__


def _judge(
    url: str, status: int, headers: Mapping[str, str], raw: bytes, *, sent_key: bool
) -> TaskResult:
    if status != 200:
        raise _refusal(status, headers, raw, sent_key=sent_key)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WorkerFailure(
            f"the worker at {url} answered 200 with a body that is not JSON ({exc}): "
            f"{quote(_text(raw))}",
            transient=False,
            status=status,
            hint='a worker answers a JSON object such as {"output": "..."}',
        ) from None
    try:
        result = parse_result(data)
    except ResultError as exc:
        raise WorkerFailure(exc.message, transient=False, hint=exc.hint, status=status) from None
    failure = failure_of(result)
    if failure:
        raise WorkerFailure(failure, transient=False, result=result, status=status)
    return result


def _refusal(
    status: int, headers: Mapping[str, str], raw: bytes, *, sent_key: bool
) -> WorkerFailure:
    if status in (401, 403):
        hint = (
            "the worker's api_key does not match the key the worker expects"
            if sent_key
            else "the worker wants a key: set api_key for this worker"
        )
        return WorkerFailure(
            f"the worker refused the key ({status})", transient=False, status=status, hint=hint
        )
    message = f"worker answered {status}: {_detail(raw)}"
    if status in TRANSIENT_STATUSES:
        wait = retry_after(headers.get("retry-after", ""))
        return WorkerFailure(message, transient=True, retry_after=wait, status=status)
    return WorkerFailure(message, transient=False, status=status)


def _detail(raw: bytes) -> str:
    """The ``error`` field of a JSON object body, else the start of the body text."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]:
        return str(data["error"])[:DETAIL_LIMIT]
    return _text(raw).strip()[:DETAIL_LIMIT] or "(empty body)"


def _text(raw: bytes) -> str:
    return raw[: DETAIL_LIMIT * 4].decode("utf-8", errors="replace")[:DETAIL_LIMIT]


def retry_after(value: str, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for: delta-seconds or an HTTP-date; None if garbage
    (or not finite); the dispatcher caps it at its ``retry_cap``."""
    return waits.retry_after(value, time.time() if now is None else now)
