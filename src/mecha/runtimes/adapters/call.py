"""Which model-API function serves an adapter: the dispatch the shim and the engine share.

``target_for`` turns a worker's ``adapter:`` block into a ``ModelTarget`` (for
``type: local`` the caller passes the embedded server's URL and model name, which speak
the OpenAI-style API); ``call_model`` and ``check_model`` then call the right functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mecha.result import TaskResult
from mecha.runtimes.adapters.model_api import OnTokens
from mecha.runtimes.adapters.ollama import ollama_chat, ollama_health
from mecha.runtimes.adapters.openai import openai_chat, openai_health

if TYPE_CHECKING:
    import httpx

    from mecha.worker.spec import AdapterSpec


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """Where and how an adapter sends a prompt."""

    api: Literal["ollama", "openai"]
    upstream: str
    model: str
    api_key: str = ""
    stream: bool = False
    max_tokens: int = 1024
    temperature: float | None = None


def target_for(
    spec: AdapterSpec, *, api_key: str | None = None, upstream: str = "", model: str = ""
) -> ModelTarget:
    """The target for ``spec``; ``api_key`` overrides ``spec.api_key`` (a resolved token:).

    ``upstream`` and ``model`` replace the spec's (required for ``type: local``: the
    embedded server's base URL and the name it answers to).
    """
    return ModelTarget(
        api="ollama" if spec.type == "ollama" else "openai",
        upstream=upstream or spec.upstream,
        model=model or spec.model,
        api_key=spec.api_key if api_key is None else api_key,
        stream=spec.stream,
        max_tokens=spec.max_tokens,
        temperature=spec.temperature,
    )


async def call_model(
    client: httpx.AsyncClient,
    target: ModelTarget,
    prompt: str,
    *,
    timeout: float,
    on_tokens: OnTokens | None = None,
) -> TaskResult:
    """Send ``prompt`` to ``target``; WorkerFailure (transient or not) if it fails.

    ``on_tokens`` hears the running token count while a streamed answer comes in.
    """
    chat = ollama_chat if target.api == "ollama" else openai_chat
    return await chat(
        client,
        target.upstream,
        model=target.model,
        prompt=prompt,
        api_key=target.api_key,
        timeout=timeout,
        stream=target.stream,
        max_tokens=target.max_tokens,
        temperature=target.temperature,
        on_tokens=on_tokens,
    )


async def check_model(client: httpx.AsyncClient, target: ModelTarget) -> str:
    """Why ``target``'s API fails its health check ("" when it answers)."""
    health = ollama_health if target.api == "ollama" else openai_health
    return await health(client, target.upstream, api_key=target.api_key)
