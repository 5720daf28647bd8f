"""What the model-API adapters (OpenAI-style, Ollama) share: failures, limits, results.

Every failure is a ``WorkerFailure`` (``mecha.runtimes.endpoint``) that says whether a
retry may help: no answer in time, a refused or broken connection, 429 and 5xx are
transient; a prompt larger than the model's context, any other 4xx and a malformed
answer are not. No httpx exception escapes ``run_call``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from mecha.duration import format_duration
from mecha.result import TaskResult, quote
from mecha.runtimes.contract import WorkerFailure
from mecha.runtimes.endpoint import retry_after, transport_cause

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
#: told the number of tokens (chunks of text) received so far, as a streamed answer grows
OnTokens = Callable[[int], None]

#: the most of a model API's answer an adapter reads
MAX_BODY_BYTES = 10 * 1024 * 1024
#: connecting never waits longer than this, whatever the task timeout
CONNECT_TIMEOUT = 10.0
#: a health check's time limit
HEALTH_TIMEOUT = 5.0
#: how much of an API's error message is quoted
DETAIL_LIMIT = 300
#: error texts that mean "the prompt does not fit the model's context"
_OVERFLOW = re.compile(
    r"context[ _-]?(length|size|window)|maximum context|exceed_context_size|"
    r"context_length_exceeded|prompt is too long",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Answer:
    """A model's reply as the adapters read it from either API."""

    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str = ""


def to_result(answer: Answer, started: float) -> TaskResult:
    """The result contract for ``answer``; ``started`` is a ``time.monotonic()`` reading."""
    return TaskResult(
        output=answer.text,
        metadata={
            "model": answer.model,
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
            "duration_ms": round((time.monotonic() - started) * 1000),
            "exit_code": 0,
            "finish_reason": answer.finish_reason,
        },
    )


def timeouts(timeout: float) -> httpx.Timeout:
    """httpx limits under a task ``timeout``: connect is capped, reads wait up to it."""
    import httpx

    return httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT))


def bearer(api_key: str) -> dict[str, str]:
    """The Authorization header for ``api_key`` (none if empty)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, url: str, body: Any, headers: Mapping[str, str], timeout: float
) -> AsyncIterator[httpx.Response]:
    """POST ``body`` as JSON; the answer with its body unread, closed on leaving.

    A server that drops a kept-alive connection just as it is reused answers nothing at
    all; that one case is sent once more on a fresh connection (as browsers and urllib3
    do). Any other error reaches ``run_call``.
    """
    import httpx

    for attempt in (1, 2):
        request = client.build_request(
            "POST", url, json=body, headers=dict(headers), timeout=timeouts(timeout)
        )
        try:
            response = await client.send(request, stream=True)
            break
        except httpx.RemoteProtocolError as exc:
            if attempt == 2 or "without sending a response" not in str(exc):
                raise
    try:
        yield response
    finally:
        await response.aclose()


async def run_call(where: str, timeout: float, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` within ``timeout`` seconds; transport trouble becomes WorkerFailure."""
    import httpx

    try:
        async with asyncio.timeout(timeout):
            return await call()
    except (TimeoutError, httpx.TimeoutException):
        raise WorkerFailure(
            f"no complete answer from {where} within {format_duration(timeout)}",
            transient=True,
            hint="the model server may be overloaded or the answer long; raise the worker's "
            "timeout or lower adapter max_tokens",
        ) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.DecodingError) as exc:
        raise WorkerFailure(f"cannot talk to {where}: {exc}", transient=False) from None
    except httpx.RemoteProtocolError as exc:
        raise WorkerFailure(
            f"the connection to {where} broke off: {exc}",
            transient=True,
            hint="the model server may have restarted or a proxy cut the connection",
        ) from None
    except (httpx.HTTPError, OSError) as exc:
        raise WorkerFailure(
            f"could not reach {where}: {transport_cause(exc)}",
            transient=True,
            hint="check that the model server is running and that adapter upstream: is right",
        ) from None


async def read_body(response: httpx.Response, where: str) -> bytes:
    """The whole body, refusing more than MAX_BODY_BYTES."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large(where)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(where: str) -> WorkerFailure:
    """The answer from ``where`` exceeds MAX_BODY_BYTES."""
    return WorkerFailure(
        f"the answer from {where} is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB",
        transient=False,
        hint="lower adapter max_tokens",
    )


def decode(raw: bytes | str, where: str) -> Any:
    """JSON from ``where``; a malformed body is a permanent failure that quotes it."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
        raise malformed(where, f"is not JSON ({exc})", text) from None


def malformed(where: str, what: str, body: Any) -> WorkerFailure:
    """``where`` answered something the adapter cannot read."""
    return WorkerFailure(
        f"the answer from {where} {what}: {quote(body)}",
        transient=False,
        hint="check that adapter type: matches the server (ollama or openai) and upstream: "
        "points at its base URL",
    )


def error_text(data: Any) -> str:
    """The error message in an API's error body, or "" when there is none."""
    if not isinstance(data, Mapping):
        return ""
    error = data.get("error")
    if isinstance(error, Mapping):
        message = error.get("message")
        return str(message) if message else quote(dict(error))
    if isinstance(error, str):
        return error
    detail = data.get("detail")  # FastAPI-style proxies
    return detail if isinstance(detail, str) else ""


def http_failure(where: str, status: int, headers: Mapping[str, str], raw: bytes) -> WorkerFailure:
    """A non-200 answer as a WorkerFailure: 429/5xx transient, context overflow and 4xx not."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    text = error_text(data) or raw.decode("utf-8", errors="replace").strip() or "(empty body)"
    if is_overflow(text, data):
        return overflow(where, text, data)
    message = f"{where} answered {status}: {text[:DETAIL_LIMIT]}"
    if status == 429 or status >= 500:
        wait = retry_after(headers.get("retry-after", ""))
        return WorkerFailure(message, transient=True, retry_after=wait, status=status)
    if status in (401, 403):
        hint = "set adapter api_key (or token:) to a key the model server accepts"
    elif status == 404:
        hint = "check adapter model: (is it installed on the server?) and upstream:"
    else:
        hint = "check the adapter settings (model, max_tokens, temperature)"
    return WorkerFailure(message, transient=False, hint=hint, status=status)


def stream_error(where: str, data: Any) -> WorkerFailure:
    """An error object inside a stream that had already started (status 200)."""
    text = error_text(data)
    if is_overflow(text, data):
        return overflow(where, text, data)
    return WorkerFailure(
        f"{where} reported an error while answering: {text[:DETAIL_LIMIT]}",
        transient=True,
        status=200,
    )


def is_overflow(text: str, data: Any) -> bool:
    """Whether an error says the prompt does not fit the model's context."""
    if _OVERFLOW.search(text):
        return True
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, Mapping):
        kind = f"{error.get('type', '')} {error.get('code', '')}"
        return bool(_OVERFLOW.search(kind))
    return False


def overflow(where: str, text: str, data: Any) -> WorkerFailure:
    """The prompt is larger than the model's context: retrying cannot help."""
    error = data.get("error") if isinstance(data, Mapping) else None
    sizes = ""
    if isinstance(error, Mapping):
        prompt, context = error.get("n_prompt_tokens"), error.get("n_ctx")
        if isinstance(prompt, int) and isinstance(context, int):
            sizes = f" ({prompt} tokens; the context holds {context})"
    return WorkerFailure(
        f"the prompt is too long for the model's context{sizes}; {where} said: "
        f"{text[:DETAIL_LIMIT]}",
        transient=False,
        hint="shorten the prompt (e.g. leave the diff out of the template) or use a model "
        "or server with a larger context",
    )


def tokens(value: Any) -> int:
    """A token count from an API field; anything that is not a count is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, int(value))


def health_reason(url: str, status: int, raw: bytes) -> str:
    """Why a health check's answer means "unavailable" ("" for 200)."""
    if status == 200:
        return ""
    try:
        text = error_text(orjson.loads(raw))
    except orjson.JSONDecodeError:
        text = ""
    text = text or raw.decode("utf-8", errors="replace").strip()
    return f"GET {url} answered {status}" + (f": {text[:DETAIL_LIMIT]}" if text else "")


async def check_health(client: httpx.AsyncClient, url: str, headers: Mapping[str, str]) -> str:
    """GET ``url``: "" on 200, else why not (never raises for transport trouble)."""
    import httpx

    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            async with client.stream(
                "GET", url, headers=dict(headers), timeout=timeouts(HEALTH_TIMEOUT)
            ) as response:
                raw = await read_body(response, url) if response.status_code != 200 else b""
                return health_reason(url, response.status_code, raw)
    except (TimeoutError, httpx.TimeoutException):
        return f"GET {url} got no answer within {format_duration(HEALTH_TIMEOUT)}"
    except WorkerFailure as exc:
        return exc.message
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return f"could not reach {url}: {transport_cause(exc)}"
