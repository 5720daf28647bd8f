"""send_task and probe against a real worker on loopback: every way an answer is judged."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import orjson
import pytest

from mecha.app.health import probe_all
from mecha.result import TaskResult
from mecha.runtimes.contract import Health, WorkerFailure
from mecha.runtimes.endpoint import probe, retry_after, send_task
from mecha.runtimes.http1 import Pool
from mecha.testing.instant_worker import Behaviour, InstantWorker


@pytest.fixture
def worker() -> Iterator[InstantWorker]:
    with InstantWorker() as running:
        yield running


def send(
    url: str,
    *,
    prompt: str = "review this",
    context: Mapping[str, Any] | None = None,
    api_key: str = "",
    timeout: float = 30.0,
) -> TaskResult:
    """One send_task with a fresh client, from synchronous test code."""

    async def go() -> TaskResult:
        client = Pool()
        try:
            return await send_task(
                client, url, task_id="t-1", prompt=prompt, context=context or {},
                api_key=api_key, timeout=timeout,
            )  # fmt: skip
        finally:
            await client.close()

    return asyncio.run(go())


def failure(url: str, **options: Any) -> WorkerFailure:
    """The WorkerFailure that sending raises."""
    with pytest.raises(WorkerFailure) as caught:
        send(url, **options)
    return caught.value


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---------------------------------------------------------------- what is sent


def test_a_task_is_posted_as_json_and_its_result_read(worker: InstantWorker) -> None:
    """id, prompt and context go to /task as JSON; the default answer comes back typed."""
    result = send(worker.url, context={"source": "github", "number": 7})
    assert result.output == "ok: review this"
    assert result.metadata == {"exit_code": 0, "model": "instant"}
    [got] = worker.requests
    assert orjson.loads(got.body) == {
        "id": "t-1",
        "prompt": "review this",
        "context": {"source": "github", "number": 7},
    }
    assert got.headers["content-type"] == "application/json"


def test_an_empty_context_is_sent_as_an_empty_object(worker: InstantWorker) -> None:
    """Direct API tasks send ``"context": {}``; the key is never left out."""
    send(worker.url + "/", context={})
    assert orjson.loads(worker.requests[0].body)["context"] == {}


def test_no_authorization_header_without_a_key(worker: InstantWorker) -> None:
    """Without an api_key no Authorization header is sent at all."""
    send(worker.url)
    assert "authorization" not in worker.requests[0].headers


def test_the_key_is_sent_as_a_bearer_token() -> None:
    """A worker that wants a key accepts the one configured."""
    with InstantWorker(api_key="s3cret") as worker:
        assert send(worker.url, api_key="s3cret").output.startswith("ok:")
        assert worker.requests[0].headers["authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(("key", "hint"), [("wrong", "does not match"), ("", "wants a key")])
def test_a_refused_key_is_not_transient(key: str, hint: str) -> None:
    """401 is a configuration fault: no retry, and the hint says what to fix."""
    with InstantWorker(api_key="s3cret") as worker:
        refused = failure(worker.url, api_key=key)
    assert refused.message == "the worker refused the key (401)"
    assert not refused.transient
    assert refused.status == 401
    assert hint in refused.hint


def test_a_key_that_cannot_be_a_header_is_refused_before_sending(worker: InstantWorker) -> None:
    """A key with a newline is not sent, and the message does not repeat the key."""
    refused = failure(worker.url, api_key="abc\n")
    assert not refused.transient
    assert "abc" not in str(refused)
    assert not worker.requests


def test_a_slow_answer_within_the_timeout_is_taken(worker: InstantWorker) -> None:
    """The task's own timeout bounds the exchange and nothing shorter cuts it."""
    worker.set(delay=0.4)
    assert send(worker.url, timeout=30.0).output.startswith("ok:")


# ---------------------------------------------------------------- transient failures


def test_a_closed_port_is_a_transient_connection_refused() -> None:
    """Nothing listening: retry later, and the message names the endpoint and cause."""
    url = f"http://127.0.0.1:{closed_port()}"
    refused = failure(url)
    assert refused.message == f"could not reach {url}/task: connection refused"
    assert refused.transient
    assert refused.status == 0


def test_a_dropped_connection_is_transient(worker: InstantWorker) -> None:
    """The worker closing without an answer is worth another try."""
    worker.set(close=True)
    dropped = failure(worker.url)
    assert dropped.transient
    assert dropped.message.startswith(f"could not reach {worker.url}/task: ")


def test_no_answer_within_the_timeout_is_transient(worker: InstantWorker) -> None:
    """A hung worker is given up on after ``timeout`` seconds, said in words."""
    worker.set(hang=True)
    late = failure(worker.url, timeout=0.3)  # that it ends before an answer: the next test
    assert late.message == f"no answer from {worker.url}/task within 300ms"
    assert late.transient


def test_a_slow_answer_counts_as_no_answer(worker: InstantWorker) -> None:
    """The timeout covers the whole exchange, however the time is spent: an answer that
    comes 5 s later is never waited for (the order, not the clock, is what is checked)."""
    worker.set(delay=5.0)
    assert failure(worker.url, timeout=0.2).transient


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_unavailable_statuses_are_transient(worker: InstantWorker, status: int) -> None:
    """A proxy in front of a restarting worker answers these; retry."""
    worker.set(status=status)
    busy = failure(worker.url)
    assert busy.transient
    assert busy.status == status
    assert busy.message == f"worker answered {status}: failed"
    assert busy.retry_after is None


def test_busy_429_carries_retry_after_seconds(worker: InstantWorker) -> None:
    """Stock images answer 429 worker busy; Retry-After seconds are passed on."""
    worker.set(status=429, retry_after="7")
    busy = failure(worker.url)
    assert busy.transient
    assert busy.retry_after == 7.0
    assert busy.message == "worker answered 429: worker busy"


def test_busy_429_carries_retry_after_from_a_date(worker: InstantWorker) -> None:
    """An HTTP-date Retry-After becomes the seconds until then."""
    worker.set(status=429, retry_after=email.utils.formatdate(time.time() + 30, usegmt=True))
    busy = failure(worker.url)
    assert busy.retry_after is not None
    assert 27.0 <= busy.retry_after <= 31.0


def test_a_garbage_retry_after_is_ignored(worker: InstantWorker) -> None:
    """A Retry-After that is neither seconds nor a date is no wish at all."""
    worker.set(status=429, retry_after="soon-ish")
    busy = failure(worker.url)
    assert busy.transient
    assert busy.retry_after is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 60.0),
        ("-5", None),
        ("1.5", None),
        ("", None),
        ("tomorrow", None),
    ],
)
def test_retry_after_values(value: str, seconds: float | None) -> None:
    """Delta-seconds and HTTP-dates are read; a past date is 0; anything else is None."""
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:27:00 GMT").timestamp()
    assert retry_after(value, now=now) == seconds


# ---------------------------------------------------------------- permanent failures


def test_an_error_status_quotes_the_error_field(worker: InstantWorker) -> None:
    """Any other status is final; the JSON "error" field is the detail."""
    worker.set(status=500, result={"error": "model crashed"})
    broken = failure(worker.url)
    assert broken.message == "worker answered 500: model crashed"
    assert not broken.transient
    assert broken.status == 500


def test_an_error_status_quotes_the_start_of_a_text_body(worker: InstantWorker) -> None:
    """Without a JSON error field, the first 200 characters of the body are the detail."""
    worker.set(status=400, body=("bad request: " + "z" * 500).encode())
    broken = failure(worker.url)
    assert broken.message == "worker answered 400: bad request: " + "z" * 187
    assert not broken.transient


def test_a_wrong_path_is_not_transient(worker: InstantWorker) -> None:
    """An endpoint pointing at the wrong place gets 404 every time."""
    assert failure(worker.url + "/api").status == 404


def test_an_answer_that_is_not_json_is_refused(worker: InstantWorker) -> None:
    """200 with HTML: not retried; the message quotes the body and orjson's reason."""
    worker.set(garbage=True)
    bad = failure(worker.url)
    assert not bad.transient
    assert bad.message.startswith(f"the worker at {worker.url}/task answered 200 with a body ")
    assert "'<html><body>502 Bad Gateway" in bad.message
    assert "unexpected character" in bad.message


def test_an_answer_breaking_the_contract_is_refused(worker: InstantWorker) -> None:
    """200 JSON of the wrong shape: the ResultError's message, quoting the fault."""
    worker.set(result={"output": "x", "labels": {"add": [3]}})
    bad = failure(worker.url)
    assert bad.message == '"labels.add[0]" is a number 3; expected a non-empty label name'
    assert not bad.transient
    assert bad.result is None


@pytest.mark.parametrize("chunked", [False, True])
def test_an_answer_over_10_mb_is_refused(worker: InstantWorker, chunked: bool) -> None:
    """Declared or streamed, more than 10 MB is not read."""
    worker.set(huge=True, chunked=chunked)
    big = failure(worker.url)
    assert big.message == "the worker's answer is larger than 10 MB"
    assert not big.transient


def test_a_chunked_answer_under_the_limit_is_read(worker: InstantWorker) -> None:
    """The streamed read reassembles an answer sent in chunks."""
    worker.set(chunked=True, result={"output": "y" * 200_000})
    assert send(worker.url).output == "y" * 200_000


def test_an_exit_code_is_a_failure_with_the_result_kept(worker: InstantWorker) -> None:
    """LLM failures come back as 200 with exit_code 1; the answer is kept for the record."""
    worker.set(exit_code=1, result={"output": "task timed out"})
    failed = failure(worker.url)
    assert failed.message == "the worker reported exit code 1: task timed out"
    assert not failed.transient
    assert failed.result is not None
    assert failed.result.output == "task timed out"
    assert failed.status == 200


def test_an_error_field_is_a_failure_with_the_result_kept(worker: InstantWorker) -> None:
    """A worker's own error report fails the task, not retried."""
    worker.set(error="rate limited by provider")
    failed = failure(worker.url)
    assert failed.message == "the worker reported an error: rate limited by provider"
    assert failed.result is not None
    assert failed.result.error == "rate limited by provider"


def test_an_endpoint_that_is_not_http_is_refused() -> None:
    """A wrong scheme is a configuration fault; the hint shows an endpoint."""
    bad = failure("ftp://127.0.0.1:1")
    assert not bad.transient
    assert bad.message.startswith("cannot send a task to ftp://127.0.0.1:1/task")
    assert "http://" in bad.hint


# ---------------------------------------------------------------- health


def probe_once(url: str, api_key: str = "") -> Health:
    async def go() -> Health:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await probe(client, url, timeout=30.0, api_key=api_key)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("status", "health"), [(200, Health.OK), (503, Health.BUSY), (500, Health.UNHEALTHY)]
)
def test_probe_reads_the_health_status(worker: InstantWorker, status: int, health: Health) -> None:
    """200 is ok, 503 busy, anything else unhealthy."""
    worker.health_status = status
    assert probe_once(worker.url) == health


def test_probe_sends_the_key_only_when_given(worker: InstantWorker) -> None:
    """The Bearer key goes with the probe when the worker has one."""
    probe_once(worker.url, api_key="k1")
    probe_once(worker.url + "/")
    assert [h.get("authorization") for h in worker.health_requests] == ["Bearer k1", None]


def test_probe_all_keeps_the_order(worker: InstantWorker) -> None:
    """One result per url, in order; a closed port is unreachable."""
    closed = f"http://127.0.0.1:{closed_port()}"
    found = asyncio.run(probe_all([closed, worker.url], api_keys=["", "k"], timeout=30.0))
    assert found == [Health.UNREACHABLE, Health.OK]
    assert worker.health_requests[0]["authorization"] == "Bearer k"


def test_probe_of_a_hung_worker_is_unreachable_within_its_timeout() -> None:
    """A worker that answers 200 only 5 s after the probe's 0.3 s is unreachable: the
    probe gave up first (the order, not the clock, is what is checked)."""

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(5)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
        finally:
            writer.close()

    async def go() -> Health:
        server = await asyncio.start_server(late, "127.0.0.1", 0)
        async with server:
            url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
                return await probe(client, url, timeout=0.3)

    assert asyncio.run(go()) == Health.UNREACHABLE


def test_scripted_behaviours_are_used_in_order(worker: InstantWorker) -> None:
    """A script answers the next tasks in order, then the default returns."""
    worker.script([Behaviour(status=503), Behaviour(status=429, retry_after="1")])
    assert failure(worker.url).status == 503
    assert failure(worker.url).retry_after == 1.0
    assert send(worker.url).output.startswith("ok:")
