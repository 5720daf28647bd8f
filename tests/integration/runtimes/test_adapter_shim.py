"""The adapter shim through the worker contract, talked to with the engine's own client.

``probe`` and ``send_task`` (mecha.runtimes.endpoint) are what ``mecha worker ls`` and
the dispatcher use, so these tests show an adapter looks like any other worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest

from mecha.result import TaskResult
from mecha.runtimes.adapters.server import MAX_TASK_BYTES, RunningAdapter, start_adapter
from mecha.runtimes.adapters.ssrf import UnsafeUpstream
from mecha.runtimes.contract import Health, WorkerFailure
from mecha.runtimes.endpoint import probe, send_task
from mecha.runtimes.http1 import Pool
from mecha.worker.spec import AdapterSpec
from tests.fake_upstream import FakeUpstream, fixture, free_port, json_reply

if TYPE_CHECKING:
    from tests.llm_servers import LlmServer

T = TypeVar("T")
KEY = "shim-key-1"
COMPLETIONS = "POST /v1/chat/completions"
OPENAI_ANSWER = fixture("openai/chat.json")
OPENAI_OVERFLOW = fixture("openai/context_length_exceeded.json")


def spec(upstream: str, **fields: Any) -> AdapterSpec:
    """An openai adapter block."""
    values: dict[str, Any] = {"type": "openai", "upstream": upstream, "model": "smollm2",
                              "max_tokens": 8, "temperature": 0.0}  # fmt: skip
    values.update(fields)
    return AdapterSpec.model_validate(values)


def with_adapter(
    adapter: AdapterSpec,
    use: Callable[[RunningAdapter, httpx.AsyncClient], Awaitable[T]],
    **options: Any,
) -> T:
    """Start the shim, run ``use`` against it, close it."""

    async def run() -> T:
        key, concurrency = options.pop("api_key", ""), options.pop("concurrency", 2)
        running = await start_adapter(
            "reviewer", adapter, api_key=key, concurrency=concurrency, **options
        )
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
                return await use(running, client)
        finally:
            await running.close()

    return asyncio.run(run())


async def task(url: str, key: str = "", prompt: str = "Hi") -> TaskResult:
    """POST /task the way the dispatcher does (its lean HTTP/1.1 pool)."""
    pool = Pool()
    try:
        return await send_task(
            pool, url, task_id="t1", prompt=prompt, context={}, api_key=key, timeout=30
        )
    finally:
        await pool.close()


def test_the_shim_serves_the_worker_contract(llama_server: LlmServer) -> None:
    """/health ok, /task answers the result contract from the real model."""

    async def use(running: RunningAdapter, client: httpx.AsyncClient) -> tuple[Any, ...]:
        health = await probe(client, running.url)
        body = (await client.get(running.url + "/health")).text
        return health, body, await task(running.url)

    health, body, result = with_adapter(spec(llama_server.url), use)
    assert (health, body) == (Health.OK, "ok")
    assert result.output.strip()
    assert result.metadata["model"] == "smollm2"
    assert result.metadata["output_tokens"] > 0
    assert result.metadata["exit_code"] == 0


def test_the_shim_demands_its_key(llama_server: LlmServer) -> None:
    """With a key configured, /task needs Authorization: Bearer <key>; /health does not."""

    async def use(running: RunningAdapter, client: httpx.AsyncClient) -> list[Any]:
        outcomes: list[Any] = [await probe(client, running.url)]
        for key in ("", "wrong"):
            try:
                await task(running.url, key)
            except WorkerFailure as exc:
                outcomes.append((exc.status, exc.transient))
        outcomes.append((await task(running.url, KEY)).metadata["exit_code"])
        return outcomes

    outcomes = with_adapter(spec(llama_server.url), use, api_key=KEY)
    assert outcomes == [Health.OK, (401, False), (401, False), 0]


def test_bad_requests_are_refused() -> None:
    """No prompt, an empty prompt, a body that is not JSON: 400; over 10 MB: 413."""
    huge = b'{"prompt": "' + b"x" * MAX_TASK_BYTES + b'"}'
    bodies = (b'{"id": "t1"}', b'{"prompt": ""}', b'{"prompt": 5}', b"not json", b"[]", huge)

    async def use(running: RunningAdapter, client: httpx.AsyncClient) -> list[tuple[int, str]]:
        answers = []
        for body in bodies:
            response = await client.post(running.url + "/task", content=body)
            answers.append((response.status_code, response.json()["error"]))
        return answers

    answers = with_adapter(spec(f"http://127.0.0.1:{free_port()}"), use)
    assert [status for status, _ in answers] == [400] * 5 + [413]
    assert 'no "prompt"' in answers[0][1]
    assert "not valid JSON" in answers[3][1]
    assert "larger than 10 MB" in answers[5][1]


def test_over_the_concurrency_cap_answers_429() -> None:
    """concurrency 1: a second task while one runs is told the worker is busy."""

    async def run() -> list[Any]:
        slow = json_reply(OPENAI_ANSWER, delay=1.0)
        async with FakeUpstream({COMPLETIONS: slow, "GET /v1/models": json_reply({})}) as up:
            running = await start_adapter("w", spec(up.url), api_key="", concurrency=1)
            try:
                async with httpx.AsyncClient(trust_env=False) as client:
                    first = asyncio.create_task(task(running.url))
                    await asyncio.sleep(0.3)
                    busy = await client.post(running.url + "/task", json={"prompt": "x"})
                    return [await first, busy.status_code, busy.json()]
            finally:
                await running.close()

    first, status, body = asyncio.run(run())
    assert first.output == OPENAI_ANSWER["choices"][0]["message"]["content"]
    assert (status, body) == (429, {"error": "worker busy"})


def test_upstream_down_means_503() -> None:
    """Nothing behind the shim: /health 503 with the reason, /task 503 (transient)."""

    async def use(running: RunningAdapter, client: httpx.AsyncClient) -> list[Any]:
        response = await client.get(running.url + "/health")
        try:
            await task(running.url)
        except WorkerFailure as exc:
            return [response.status_code, response.json()["error"], exc.status, exc.transient]
        return []

    status, reason, task_status, transient = with_adapter(
        spec(f"http://127.0.0.1:{free_port()}"), use
    )
    assert status == 503
    assert reason.startswith("upstream unavailable: could not reach")
    assert "connection refused" in reason
    assert (task_status, transient) == (503, True)


def test_upstream_failures_keep_their_kind() -> None:
    """Transient → 503 with Retry-After; permanent (context overflow) → 500."""

    async def run() -> list[WorkerFailure]:
        busy = json_reply({"error": {"message": "overloaded"}}, 503, headers={"Retry-After": "7"})
        failures = []
        for reply in (busy, json_reply(OPENAI_OVERFLOW, 400)):
            async with FakeUpstream({COMPLETIONS: reply}) as up:
                running = await start_adapter("w", spec(up.url), api_key="", concurrency=1)
                try:
                    await task(running.url)
                except WorkerFailure as exc:
                    failures.append(exc)
                finally:
                    await running.close()
        return failures

    busy, overflow = asyncio.run(run())
    assert (busy.status, busy.transient, busy.retry_after) == (503, True, 7.0)
    assert "overloaded" in busy.message
    assert (overflow.status, overflow.transient) == (500, False)
    assert "too long for the model's context" in overflow.message


def test_start_refuses_an_upstream_that_resolves_to_link_local() -> None:
    """The worker file check passes a numeric host name; the start-time lookup does not."""
    adapter = spec("http://2852039166/")

    async def run() -> None:
        await start_adapter("w", adapter, api_key="", concurrency=1)

    with pytest.raises(UnsafeUpstream) as caught:
        asyncio.run(run())
    assert "169.254.169.254" in caught.value.message


def test_closing_stops_the_shim(llama_server: LlmServer) -> None:
    """After close() nothing listens at the adapter's URL."""

    async def run() -> Health:
        running = await start_adapter("w", spec(llama_server.url), api_key="", concurrency=1)
        await running.close()
        await running.close()  # twice is fine
        async with httpx.AsyncClient(trust_env=False) as client:
            return await probe(client, running.url)

    assert asyncio.run(run()) == Health.UNREACHABLE


@pytest.mark.usefixtures("embedded_model")
def test_a_local_adapter_runs_the_embedded_model_and_stops_it() -> None:
    """type: local starts llama.cpp in this process, answers, and stops it on close."""
    adapter = AdapterSpec.model_validate({"type": "local", "max_tokens": 8, "temperature": 0.0})

    async def run() -> tuple[TaskResult, str, Health]:
        from mecha.runtimes.adapters import local_model

        running = await start_adapter("local", adapter, api_key="", concurrency=1)
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
                result = await task(running.url)
                (model_url,) = [shared.url for shared in local_model._SERVERS.values()]
        finally:
            await running.close()
        async with httpx.AsyncClient(trust_env=False) as client:
            return result, model_url, await probe(client, model_url)

    result, model_url, after = asyncio.run(run())
    assert result.metadata["model"] == "smollm2"
    assert result.output.strip()
    assert model_url.startswith("http://127.0.0.1:")
    assert after == Health.UNREACHABLE
