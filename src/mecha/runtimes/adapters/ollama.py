"""The Ollama adapter: ``POST <upstream>/api/chat``, whole or as NDJSON.

Health is ``GET <upstream>/`` ("Ollama is running"). The answer's last object
(``done: true``) carries ``prompt_eval_count``, ``eval_count`` and ``done_reason``; an
``{"error": "..."}`` object, before or during a stream, is a failure. A stream that ends
before ``done: true`` is transient; ``on_tokens`` is told the count of objects with text
so far (one token each). Failures are ``WorkerFailure`` (see model_api).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mecha.result import TaskResult
from mecha.runtimes.adapters.model_api import (
    MAX_BODY_BYTES,
    Answer,
    OnTokens,
    bearer,
    check_health,
    decode,
    http_failure,
    malformed,
    open_stream,
    read_body,
    run_call,
    stream_error,
    to_result,
    tokens,
    too_large,
)
from mecha.runtimes.contract import WorkerFailure

if TYPE_CHECKING:
    import httpx


def ollama_base(upstream: str) -> str:
    """The server's base URL (a trailing ``/`` or ``/api`` is dropped)."""
    base = upstream.strip().rstrip("/")
    return base.removesuffix("/api")


async def ollama_health(client: httpx.AsyncClient, upstream: str, *, api_key: str = "") -> str:
    """Why Ollama is unavailable ("" when ``GET <upstream>/`` answers 200)."""
    return await check_health(client, ollama_base(upstream) + "/", bearer(api_key))


async def ollama_chat(
    client: httpx.AsyncClient,
    upstream: str,
    *,
    model: str,
    prompt: str,
    api_key: str,
    timeout: float,
    stream: bool,
    max_tokens: int,
    temperature: float | None,
    on_tokens: OnTokens | None = None,
) -> TaskResult:
    """Send ``prompt`` as one user message; the reply and its counts as a TaskResult."""
    url = ollama_base(upstream) + "/api/chat"
    where = f"Ollama at {url}"
    options: dict[str, Any] = {"num_predict": max_tokens}
    if temperature is not None:
        options["temperature"] = temperature
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
        "options": options,
    }
    started = time.monotonic()

    async def call() -> Answer:
        async with open_stream(client, url, body, bearer(api_key), timeout) as response:
            if response.status_code != 200:
                raw = await read_body(response, where)
                raise http_failure(where, response.status_code, response.headers, raw)
            if stream:
                return await _read_lines(response, where, model, on_tokens)
            data = decode(await read_body(response, where), where)
            state = _Reply(where, model)
            state.add(data)
            if not state.done:
                raise malformed(where, 'is not a finished reply ("done": true)', data)
            return state.answer()

    return to_result(await run_call(where, timeout, call), started)


class _Reply:
    """What the objects of a chat reply add up to."""

    def __init__(self, where: str, model: str, on_tokens: OnTokens | None = None) -> None:
        self.where = where
        self.model = model
        self.parts: list[str] = []
        self.done = False
        self.last: Mapping[str, Any] = {}
        self.on_tokens = on_tokens

    def add(self, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise malformed(self.where, "is not a JSON object", data)
        if "error" in data:
            raise stream_error(self.where, data)
        message = data.get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        if content is not None and not isinstance(content, str):
            raise malformed(self.where, "has a message.content that is not text", data)
        if content:
            self.parts.append(content)
            if self.on_tokens is not None:
                self.on_tokens(len(self.parts))
        self.model = str(data.get("model") or self.model)
        if data.get("done") is True:
            self.done = True
            self.last = data

    def answer(self) -> Answer:
        return Answer(
            text="".join(self.parts),
            model=self.model,
            input_tokens=tokens(self.last.get("prompt_eval_count")),
            output_tokens=tokens(self.last.get("eval_count")),
            finish_reason=str(self.last.get("done_reason") or ""),
        )


async def _read_lines(
    response: httpx.Response, where: str, model: str, on_tokens: OnTokens | None
) -> Answer:
    """NDJSON objects up to the one with ``done: true``."""
    state = _Reply(where, model, on_tokens)
    size = 0
    async for line in response.aiter_lines():
        size += len(line)
        if size > MAX_BODY_BYTES:
            raise too_large(where)
        if not line.strip():
            continue
        state.add(decode(line, where))
        if state.done:
            return state.answer()
    received = sum(len(part) for part in state.parts)
    raise WorkerFailure(
        f'the stream from {where} ended before its last object ("done": true) '
        f"({received} characters of answer received)",
        transient=True,
        hint="the Ollama server may have restarted or a proxy cut the stream",
        status=200,
    )
