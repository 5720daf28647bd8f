"""The adapters against real model servers: llama.cpp (SmolLM2) and ollama-proxy-plus.

Answers are checked for structure, not wording (the model is tiny). temperature 0 and
a small max_tokens keep each call well under a second on a quiet machine.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mecha.result import TaskResult, result_json
from mecha.runtimes.adapters.ollama import ollama_chat, ollama_health
from mecha.runtimes.adapters.openai import openai_chat, openai_health
from mecha.runtimes.contract import WorkerFailure
from tests.fake_upstream import free_port

if TYPE_CHECKING:
    from tests.llm_servers import LlmServer

MAX_TOKENS = 16


def chat(api: str, server: LlmServer, url: str = "", **options: Any) -> TaskResult:
    """One adapter call against ``server`` (or ``url``)."""
    settings: dict[str, Any] = {
        "model": server.model, "prompt": "Name three colours.", "api_key": "",
        "timeout": 60.0, "stream": False, "max_tokens": MAX_TOKENS, "temperature": 0.0,
    }  # fmt: skip
    settings.update(options)
    function = ollama_chat if api == "ollama" else openai_chat

    async def run() -> TaskResult:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await function(client, url or server.url, **settings)

    return asyncio.run(run())


def health(api: str, url: str) -> str:
    """The adapter's health verdict for ``url``."""
    function = ollama_health if api == "ollama" else openai_health

    async def run() -> str:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await function(client, url, api_key="")

    return asyncio.run(run())


def assert_answer(result: TaskResult, model: str, *, max_tokens: int = MAX_TOKENS) -> None:
    """A real answer: text, the model's name, token counts, a finish reason."""
    assert result.output.strip()
    meta = result.metadata
    assert meta["model"] == model
    assert meta["input_tokens"] > 0
    assert 0 < meta["output_tokens"] <= max_tokens
    assert meta["exit_code"] == 0
    assert meta["finish_reason"] in ("stop", "length")
    assert isinstance(meta["duration_ms"], int)
    assert meta["duration_ms"] >= 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_openai_adapter_against_llama_cpp(
    llama_server: LlmServer, stream: bool, suffix: str
) -> None:
    """Whole and SSE answers with usage; the base URL works with or without /v1."""
    result = chat("openai", llama_server, llama_server.url + suffix, stream=stream)
    assert_answer(result, "smollm2")


def test_max_tokens_reaches_the_server(llama_server: LlmServer) -> None:
    """The cap is sent: a long request stops at it with finish_reason length."""
    result = chat("openai", llama_server, prompt="Write a long story about a ship.", max_tokens=4)
    assert result.metadata["output_tokens"] == 4
    assert result.metadata["finish_reason"] == "length"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_prompt_over_the_context_is_permanent(llama_server: LlmServer, stream: bool) -> None:
    """llama.cpp's exceed_context_size_error: not transient, and says the sizes."""
    prompt = "word " * (llama_server.slot_ctx + 200)
    with pytest.raises(WorkerFailure) as caught:
        chat("openai", llama_server, prompt=prompt, stream=stream)
    problem = caught.value
    assert not problem.transient
    assert "the prompt is too long for the model's context" in problem.message
    assert f"the context holds {llama_server.slot_ctx})" in problem.message
    assert "shorten the prompt" in problem.hint


def test_openai_health(llama_server: LlmServer) -> None:
    """GET /v1/models: "" when up; the reason when nothing listens."""
    assert health("openai", llama_server.url) == ""
    reason = health("openai", f"http://127.0.0.1:{free_port()}")
    assert "connection refused" in reason
    assert "/v1/models" in reason


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_ollama_adapter_against_ollama_proxy(ollama_server: LlmServer, stream: bool) -> None:
    """/api/chat whole and NDJSON through a real Ollama-protocol server."""
    result = chat("ollama", ollama_server, stream=stream)
    assert_answer(result, "local/smollm2")
    assert result.metadata["finish_reason"] == "stop"  # the proxy always says stop


def test_ollama_health(ollama_server: LlmServer) -> None:
    """GET / answers "Ollama is running"."""
    assert health("ollama", ollama_server.url) == ""
    assert health("ollama", ollama_server.url + "/api/") == ""
    assert "connection refused" in health("ollama", f"http://127.0.0.1:{free_port()}")


def test_ollama_overflow_through_the_proxy_is_permanent(ollama_server: LlmServer) -> None:
    """The proxy answers 502 with llama.cpp's words; the words decide: not transient."""
    with pytest.raises(WorkerFailure) as caught:
        chat("ollama", ollama_server, prompt="word " * (ollama_server.slot_ctx + 200))
    assert not caught.value.transient
    assert "too long for the model's context" in caught.value.message


def without_duration(result: TaskResult) -> dict[str, Any]:
    shown = result_json(result)
    del shown["metadata"]["duration_ms"]
    return shown


def test_a_streamed_answer_is_the_whole_answer_and_counts_its_tokens(
    llama_server: LlmServer,
) -> None:
    """What the adapter returns does not depend on streaming; only streaming is counted."""
    heard: list[int] = []
    whole = chat("openai", llama_server, max_tokens=40)
    streamed = chat("openai", llama_server, stream=True, max_tokens=40, on_tokens=heard.append)
    assert without_duration(streamed) == without_duration(whole)
    # llama.cpp sends one token per chunk: the last count is the usage it reports
    assert heard == list(range(1, len(heard) + 1))
    assert heard[-1] == streamed.metadata["output_tokens"]
    unheard: list[int] = []
    chat("openai", llama_server, max_tokens=40, on_tokens=unheard.append)
    assert unheard == []  # a whole answer has nothing to count along the way


def test_an_ollama_stream_counts_its_chunks(ollama_server: LlmServer) -> None:
    heard: list[int] = []
    whole = chat("ollama", ollama_server, max_tokens=40)
    streamed = chat("ollama", ollama_server, stream=True, max_tokens=40, on_tokens=heard.append)
    assert streamed.output == whole.output
    assert heard and heard == list(range(1, len(heard) + 1))
