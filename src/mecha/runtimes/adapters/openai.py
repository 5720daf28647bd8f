"""The OpenAI-style adapter: ``POST <base>/v1/chat/completions``, whole or as SSE.

Works with OpenAI and the servers that copy its API (llama.cpp, vLLM, LM Studio, …).
``upstream`` is the base URL with or without ``/v1``. A streamed answer asks for usage
(``stream_options.include_usage``) and must end with ``data: [DONE]``; a stream that
stops before it is a transient failure. It adds up to the same result as a whole one;
``on_tokens`` is told the count of chunks with text so far (about one token each).
Failures are ``WorkerFailure`` (see model_api).
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


def openai_base(upstream: str) -> str:
    """The API base ending in ``/v1``, whether or not ``upstream`` already had it."""
    base = upstream.strip().rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


async def openai_health(client: httpx.AsyncClient, upstream: str, *, api_key: str) -> str:
    """Why the API is unavailable ("" when ``GET <base>/v1/models`` answers 200)."""
    return await check_health(client, openai_base(upstream) + "/models", bearer(api_key))


async def openai_chat(
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
    """Send ``prompt`` as one user message; the reply and its usage as a TaskResult."""
    url = openai_base(upstream) + "/chat/completions"
    where = f"the OpenAI-style API at {url}"
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if temperature is not None:
        body["temperature"] = temperature
    if stream:
        body["stream_options"] = {"include_usage": True}
    started = time.monotonic()

    async def call() -> Answer:
        async with open_stream(client, url, body, bearer(api_key), timeout) as response:
            if response.status_code != 200:
                raw = await read_body(response, where)
                raise http_failure(where, response.status_code, response.headers, raw)
            kind = response.headers.get("content-type", "")
            if stream and "text/event-stream" in kind:
                return await _read_events(response, where, model, on_tokens)
            return _completion(decode(await read_body(response, where), where), where, model)

    return to_result(await run_call(where, timeout, call), started)


def _completion(data: Any, where: str, asked: str) -> Answer:
    """A whole ``chat.completion`` object."""
    if isinstance(data, Mapping) and "error" in data:
        raise stream_error(where, data)
    choices = data.get("choices") if isinstance(data, Mapping) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise malformed(where, "has no choices[0]", data)
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, Mapping) else None
    if content is not None and not isinstance(content, str):
        raise malformed(where, "has a choices[0].message.content that is not text", data)
    usage = data.get("usage") if isinstance(data.get("usage"), Mapping) else {}
    return Answer(
        text=content or "",
        model=str(data.get("model") or asked),
        input_tokens=tokens(usage.get("prompt_tokens")),
        output_tokens=tokens(usage.get("completion_tokens")),
        finish_reason=str(choices[0].get("finish_reason") or ""),
    )


class _Stream:
    """What the chunks of a streamed completion add up to."""

    def __init__(self, where: str, model: str, on_tokens: OnTokens | None = None) -> None:
        self.where = where
        self.model = model
        self.parts: list[str] = []
        self.usage: Mapping[str, Any] = {}
        self.finish_reason = ""
        self.on_tokens = on_tokens

    def add(self, payload: str) -> None:
        chunk = decode(payload, self.where)
        if not isinstance(chunk, Mapping):
            raise malformed(self.where, "sent an event that is not a JSON object", chunk)
        if "error" in chunk:
            raise stream_error(self.where, chunk)
        self.model = str(chunk.get("model") or self.model)
        if isinstance(chunk.get("usage"), Mapping):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, Mapping) else None
            if isinstance(text, str) and text:
                self.parts.append(text)
                if self.on_tokens is not None:
                    self.on_tokens(len(self.parts))
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])

    def answer(self) -> Answer:
        return Answer(
            text="".join(self.parts),
            model=self.model,
            input_tokens=tokens(self.usage.get("prompt_tokens")),
            output_tokens=tokens(self.usage.get("completion_tokens")),
            finish_reason=self.finish_reason,
        )


async def _read_events(
    response: httpx.Response, where: str, model: str, on_tokens: OnTokens | None
) -> Answer:
    """Server-sent events up to ``data: [DONE]``."""
    state = _Stream(where, model, on_tokens)
    data: list[str] = []
    size = 0
    async for line in response.aiter_lines():
        size += len(line)
        if size > MAX_BODY_BYTES:
            raise too_large(where)
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:  # comments, event:/id:/retry: fields, stray blank lines
            continue
        payload, data = "\n".join(data), []
        if payload.strip() == "[DONE]":
            return state.answer()
        state.add(payload)
    if data and "\n".join(data).strip() == "[DONE]":
        return state.answer()
    received = sum(len(part) for part in state.parts)
    raise WorkerFailure(
        f"the stream from {where} ended before data: [DONE] "
        f"({received} characters of answer received)",
        transient=True,
        hint="the model server may have restarted or a proxy cut the stream",
        status=200,
    )
