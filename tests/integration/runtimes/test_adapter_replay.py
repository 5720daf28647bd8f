"""Both adapters against a real HTTP server that replays documented answers or misbehaves.

The answers are the APIs' documented ones (tests/fixtures/ollama, tests/fixtures/openai),
so the field mapping (tokens, model, done_reason, usage) is checked against the real
formats. Faults: 5xx, 429, a slow first byte, a
stream cut short, a body that is not JSON, nothing listening.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from mecha.result import TaskResult
from mecha.runtimes.adapters.ollama import ollama_chat
from mecha.runtimes.adapters.openai import openai_chat
from mecha.runtimes.contract import WorkerFailure
from tests.fake_upstream import (
    FakeUpstream,
    Reply,
    Route,
    Seen,
    fixture,
    free_port,
    json_reply,
    ndjson_reply,
    sse_reply,
)

CHAT = "POST /api/chat"
COMPLETIONS = "POST /v1/chat/completions"
OPENAI_ANSWER = fixture("openai/chat.json")
OPENAI_CHUNKS = fixture("openai/chat_stream.json")
OPENAI_OVERFLOW = fixture("openai/context_length_exceeded.json")


async def _chat(api: str, url: str, options: dict[str, Any]) -> TaskResult:
    settings: dict[str, Any] = {
        "model": "llama3.2", "prompt": "why is the sky blue?", "api_key": "", "timeout": 10.0,
        "stream": False, "max_tokens": 16, "temperature": 0.0,
    }  # fmt: skip
    settings.update(options)
    chat = ollama_chat if api == "ollama" else openai_chat
    async with httpx.AsyncClient(trust_env=False) as client:
        return await chat(client, url, **settings)


def replay(
    api: str, routes: dict[str, Route], **options: Any
) -> tuple[TaskResult | WorkerFailure, list[Seen]]:
    """Call the adapter against a FakeUpstream; the result (or failure) and what it sent."""

    async def run() -> tuple[TaskResult | WorkerFailure, list[Seen]]:
        async with FakeUpstream(routes) as server:
            try:
                return await _chat(api, server.url, options), server.seen
            except WorkerFailure as exc:
                return exc, server.seen

    return asyncio.run(run())


def failure(outcome: TaskResult | WorkerFailure) -> WorkerFailure:
    """The outcome must be a failure."""
    assert isinstance(outcome, WorkerFailure), f"expected a failure, got {outcome}"
    return outcome


# ---------------------------------------------------------------- Ollama, documented answers


def test_ollama_whole_answer_maps_every_field() -> None:
    """stream false: message.content, model, prompt_eval_count, eval_count, done_reason."""
    result, seen = replay("ollama", {CHAT: json_reply(fixture("ollama/chat.json"))})
    assert isinstance(result, TaskResult)
    assert result.output == '{"age": 22, "available": false}'
    metadata = dict(result.metadata)
    assert metadata.pop("duration_ms") >= 0
    assert metadata == {
        "model": "llama3.1", "input_tokens": 34, "output_tokens": 12, "exit_code": 0,
        "finish_reason": "stop",
    }  # fmt: skip
    assert seen[0].body == {
        "model": "llama3.2", "messages": [{"role": "user", "content": "why is the sky blue?"}],
        "stream": False, "options": {"num_predict": 16, "temperature": 0.0},
    }  # fmt: skip


def test_ollama_stream_adds_up_chunks_and_reads_counts_from_the_last() -> None:
    """NDJSON: content from every object, counts from the done:true one (no message)."""
    result, seen = replay(
        "ollama", {CHAT: ndjson_reply(fixture("ollama/chat_stream.json"))}, stream=True,
        temperature=None, max_tokens=100,
    )  # fmt: skip
    assert isinstance(result, TaskResult)
    assert result.output == "The"
    assert result.metadata["model"] == "llama3.2"
    assert (result.metadata["input_tokens"], result.metadata["output_tokens"]) == (26, 282)
    assert result.metadata["finish_reason"] == ""  # the documented final object has none
    assert seen[0].body["stream"] is True
    assert seen[0].body["options"] == {"num_predict": 100}  # no temperature: server default


@pytest.mark.parametrize(("status", "transient"), [(500, True), (502, True), (503, True)])
def test_ollama_server_errors_are_transient(status: int, transient: bool) -> None:
    """Documented error body on a 5xx: retry later, quoting Ollama's message."""
    outcome, _ = replay("ollama", {CHAT: json_reply(fixture("ollama/error.json"), status)})
    problem = failure(outcome)
    assert problem.transient is transient
    assert problem.status == status
    assert "the model failed to generate a response" in problem.message
    assert "/api/chat" in problem.message


def test_ollama_unknown_model_is_permanent_and_says_what_to_check() -> None:
    """404 model not found: retrying cannot help."""
    outcome, _ = replay("ollama", {CHAT: json_reply(fixture("ollama/not_found.json"), 404)})
    problem = failure(outcome)
    assert not problem.transient
    assert "model 'llama3.2' not found" in problem.message
    assert "model:" in problem.hint


def test_ollama_error_in_the_middle_of_a_stream() -> None:
    """The documented mid-stream error line (status stays 200) is a transient failure."""
    outcome, _ = replay(
        "ollama", {CHAT: ndjson_reply(fixture("ollama/stream_error.json"))}, stream=True
    )
    problem = failure(outcome)
    assert problem.transient
    assert "an error was encountered while running the model" in problem.message


def test_ollama_stream_cut_before_done_is_transient() -> None:
    """A stream that ends (cleanly or not) before done:true may succeed next time."""
    first = fixture("ollama/chat_stream.json")[:1]
    for reply in (ndjson_reply(first), ndjson_reply(first, cut=True)):
        problem = failure(replay("ollama", {CHAT: reply}, stream=True)[0])
        assert problem.transient
        assert "ended before" in problem.message or "broke off" in problem.message


def test_ollama_body_that_is_not_json_is_permanent() -> None:
    """A 200 whose body is not JSON: something else answers there; quote it."""
    reply = Reply(200, b"<html>login required</html>", {"Content-Type": "text/html"})
    problem = failure(replay("ollama", {CHAT: reply})[0])
    assert not problem.transient
    assert "<html>login required</html>" in problem.message
    assert "type:" in problem.hint


# ---------------------------------------------------------------- OpenAI-style, reference answers


def test_openai_whole_answer_maps_every_field() -> None:
    """choices[0].message.content, model as reported, usage, finish_reason."""
    result, seen = replay("openai", {COMPLETIONS: json_reply(OPENAI_ANSWER)}, api_key="sk-1")
    assert isinstance(result, TaskResult)
    assert result.output == "\n\nHello there, how may I assist you today?"
    assert result.metadata["model"] == "gpt-4o-mini"
    assert (result.metadata["input_tokens"], result.metadata["output_tokens"]) == (9, 12)
    assert result.metadata["finish_reason"] == "stop"
    assert seen[0].headers["authorization"] == "Bearer sk-1"
    assert seen[0].body == {
        "model": "llama3.2", "messages": [{"role": "user", "content": "why is the sky blue?"}],
        "max_tokens": 16, "stream": False, "temperature": 0.0,
    }  # fmt: skip


def test_openai_stream_reads_deltas_and_the_usage_chunk() -> None:
    """SSE deltas add up; the last chunk (empty choices) carries usage; [DONE] ends it."""
    events = [json.dumps(chunk) for chunk in OPENAI_CHUNKS] + ["[DONE]"]
    result, seen = replay("openai", {COMPLETIONS: sse_reply(events)}, stream=True)
    assert isinstance(result, TaskResult)
    assert result.output == "Hello there"
    assert (result.metadata["input_tokens"], result.metadata["output_tokens"]) == (9, 2)
    assert result.metadata["finish_reason"] == "stop"
    assert seen[0].body["stream_options"] == {"include_usage": True}


def test_openai_stream_without_done_is_transient() -> None:
    """Every chunk but no data: [DONE], or the connection dropped mid-chunk."""
    events = [json.dumps(chunk) for chunk in OPENAI_CHUNKS[:3]]
    for reply, words in ((sse_reply(events), "ended before data: [DONE]"),
                         (sse_reply(events, cut=True), "broke off")):  # fmt: skip
        problem = failure(replay("openai", {COMPLETIONS: reply}, stream=True)[0])
        assert problem.transient
        assert words in problem.message


def test_openai_context_length_exceeded_is_permanent() -> None:
    """OpenAI's own overflow error (400 context_length_exceeded)."""
    problem = failure(replay("openai", {COMPLETIONS: json_reply(OPENAI_OVERFLOW, 400)})[0])
    assert not problem.transient
    assert "the prompt is too long for the model's context" in problem.message
    assert "8227 tokens" in problem.message
    assert "shorten the prompt" in problem.hint


def test_openai_other_4xx_quotes_the_api_message() -> None:
    """A 400 the server explains: permanent, with its words."""
    body = {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error",
                      "code": None}}  # fmt: skip
    problem = failure(replay("openai", {COMPLETIONS: json_reply(body, 400)})[0])
    assert not problem.transient
    assert problem.status == 400
    assert "Invalid value for 'temperature'" in problem.message


def test_openai_429_and_5xx_are_transient_with_retry_after() -> None:
    """Busy or broken servers: retry, after the delay they ask for."""
    for status in (429, 500, 503):
        reply = json_reply({"error": {"message": "overloaded"}}, status,
                           headers={"Retry-After": "7"})  # fmt: skip
        problem = failure(replay("openai", {COMPLETIONS: reply})[0])
        assert (problem.transient, problem.status, problem.retry_after) == (True, status, 7.0)


def test_openai_malformed_answers_are_permanent_and_quoted() -> None:
    """Not JSON, or JSON without choices."""
    for body in (b"Service temporarily moved", b'{"object": "list", "data": []}'):
        reply = Reply(200, body, {"Content-Type": "application/json"})
        problem = failure(replay("openai", {COMPLETIONS: reply})[0])
        assert not problem.transient
        assert body.decode()[:20] in problem.message


# ---------------------------------------------------------------- time and connections


@pytest.mark.parametrize(("api", "route"), [("openai", COMPLETIONS), ("ollama", CHAT)])
@pytest.mark.parametrize("stream", [False, True])
def test_a_slow_first_byte_is_bounded_by_the_timeout(api: str, route: str, stream: bool) -> None:
    """No status line within timeout: a transient failure, on time."""
    reply = json_reply(OPENAI_ANSWER if api == "openai" else fixture("ollama/chat.json"), delay=5)
    # a failure, not the answer that comes 5 s later: the timeout ended the wait first
    problem = failure(replay(api, {route: reply}, timeout=0.5, stream=stream)[0])
    assert problem.transient
    assert "within 500ms" in problem.message


def test_a_stream_that_stalls_is_bounded_by_the_timeout() -> None:
    """First bytes arrive quickly, the rest never: still within the timeout."""
    chunks = fixture("ollama/chat_stream.json")
    reply = ndjson_reply(chunks, pause=5)
    problem = failure(replay("ollama", {CHAT: reply}, timeout=0.5, stream=True)[0])
    assert problem.transient


def test_a_stream_that_trickles_past_the_timeout_is_cut_off() -> None:
    """Every chunk comes in time, the whole answer does not: the timeout is for the task."""
    first, last = fixture("ollama/chat_stream.json")
    reply = ndjson_reply([first] * 20 + [last], pause=0.3)  # whole: 6 s
    problem = failure(replay("ollama", {CHAT: reply}, timeout=1.0, stream=True)[0])
    assert problem.transient
    assert "no complete answer" in problem.message


@pytest.mark.parametrize("stream", [False, True])
def test_a_connection_dropped_without_an_answer_is_tried_once_more(stream: bool) -> None:
    """A kept-alive connection the server closed as it was reused: one fresh try."""
    answers = iter([Reply(drop=True), json_reply(fixture("ollama/chat.json"))])
    result, seen = replay("ollama", {CHAT: lambda _: next(answers)}, stream=stream)
    assert isinstance(result, TaskResult)
    assert len(seen) == 2
    twice = iter([Reply(drop=True), Reply(drop=True)])
    problem = failure(replay("ollama", {CHAT: lambda _: next(twice)})[0])
    assert problem.transient
    assert "broke off" in problem.message


@pytest.mark.parametrize("api", ["openai", "ollama"])
def test_nothing_listening_is_transient(api: str) -> None:
    """Connection refused: the server may come back."""

    async def run() -> TaskResult:
        return await _chat(api, f"http://127.0.0.1:{free_port()}", {})

    with pytest.raises(WorkerFailure) as caught:
        asyncio.run(run())
    assert caught.value.transient
    assert "connection refused" in caught.value.message
