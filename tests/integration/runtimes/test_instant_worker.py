"""The instant worker itself: its switches, its HTTP handling, its command line."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from mecha.runtimes.contract import WorkerFailure
from mecha.runtimes.endpoint import send_task
from mecha.runtimes.http1 import Pool
from mecha.testing.instant_worker import Behaviour, InstantWorker
from tests.integration.runtimes.test_endpoint import failure, send


@pytest.fixture
def worker() -> Iterator[InstantWorker]:
    with InstantWorker() as running:
        yield running


async def send_many(url: str, count: int) -> list[str]:
    """``count`` tasks at once over one client; their outputs."""
    client = Pool()
    try:
        results = await asyncio.gather(
            *(
                send_task(client, url, task_id=f"t-{n}", prompt=f"p{n}", context={}, timeout=30)
                for n in range(count)
            )
        )
    finally:
        await client.close()
    return [r.output for r in results]


def raw_exchange(url: str, data: bytes) -> bytes:
    """Write ``data`` on one connection and read until the worker closes it."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_default_answer_echoes_the_prompt_start(worker: InstantWorker) -> None:
    """The default result is ``ok:`` and the first 40 characters of the prompt."""
    result = send(worker.url, prompt="a" * 50)
    assert result.output == "ok: " + "a" * 40
    assert result.metadata["model"] == "instant"


def test_set_replaces_the_whole_default(worker: InstantWorker) -> None:
    """Fields not named in set() return to their defaults."""
    worker.set(status=503)
    worker.set(delay=0.01)
    assert send(worker.url).output.startswith("ok:")


def test_concurrent_tasks_are_counted_in_flight(worker: InstantWorker) -> None:
    """Delayed answers overlap; max_in_flight says how many were handled at once."""
    worker.set(delay=0.3)
    outputs = asyncio.run(send_many(worker.url, 4))
    assert sorted(outputs) == [f"ok: p{n}" for n in range(4)]
    assert worker.max_in_flight == 4


def test_sequential_tasks_are_one_in_flight(worker: InstantWorker) -> None:
    """One after the other never overlaps."""
    worker.set(delay=0.01)
    send(worker.url)
    send(worker.url)
    assert worker.max_in_flight == 1


def test_times_are_recorded(worker: InstantWorker) -> None:
    """received_at and finished_at are wall-clock times around the delay."""
    worker.set(delay=0.2)
    before = time.time()
    send(worker.url)
    [got] = worker.requests
    assert got.finished_at is not None
    assert before <= got.received_at <= got.finished_at - 0.2


def test_wait_for_returns_once_enough_arrived(worker: InstantWorker) -> None:
    """wait_for blocks until tasks sent from elsewhere arrived."""
    sender = threading.Thread(target=lambda: asyncio.run(send_many(worker.url, 3)))
    sender.start()
    got = worker.wait_for(3, timeout=60.0)
    sender.join()
    assert sorted(r.id for r in got) == ["t-0", "t-1", "t-2"]


def test_wait_for_says_what_arrived_when_it_times_out(worker: InstantWorker) -> None:
    """The assertion names the count, the goal and the latest ids."""
    send(worker.url)
    with pytest.raises(AssertionError) as caught:
        worker.wait_for(2, timeout=0.1)
    assert str(caught.value) == (
        f"the instant worker at {worker.url} received 1 of 2 tasks within 0.1s (latest ids: t-1)"
    )


def test_close_releases_a_hung_request() -> None:
    """A hung task's connection is dropped when the worker closes; the sender sees it."""
    worker = InstantWorker()
    worker.set(hang=True)
    outcome: list[WorkerFailure] = []

    def hung_send() -> None:
        with pytest.raises(WorkerFailure) as caught:
            send(worker.url, timeout=10.0)
        outcome.append(caught.value)

    sender = threading.Thread(target=hung_send)
    sender.start()
    worker.wait_for(1)
    worker.close()
    sender.join(60.0)
    assert outcome
    assert outcome[0].transient
    # ended by the close, not by the send's own 10 s timeout ("no answer ... within 10s")
    assert outcome[0].message.startswith(f"could not reach {worker.url}/task"), outcome


def test_without_recording_only_the_count_is_kept() -> None:
    """record=False keeps memory flat for long benchmarks."""
    with InstantWorker(record=False) as worker:
        send(worker.url)
        assert worker.wait_for(1) == []
        assert worker.received == 1


def test_a_task_without_prompt_is_refused(worker: InstantWorker) -> None:
    """As stock images do: 400 missing prompt."""
    answer = httpx.post(worker.url + "/task", content=b'{"id": "x"}')
    assert answer.status_code == 400
    assert answer.json() == {"error": "missing prompt"}


def test_keep_alive_answers_several_requests_on_one_connection(worker: InstantWorker) -> None:
    """Two requests on one connection, the last asking to close: two answers, then EOF."""
    body = orjson.dumps({"id": "a", "prompt": "p", "context": {}})
    task = b"POST /task HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
    data = task + b"\r\n" + body + task + b"Connection: close\r\n\r\n" + body
    answer = raw_exchange(worker.url, data)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert answer.endswith(b'{"output":"ok: p","metadata":{"exit_code":0,"model":"instant"}}')


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /task HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
        (b"GET /nowhere HTTP/1.0\r\n\r\n", b"404"),
        (b"GET /task HTTP/1.0\r\n\r\n", b"405"),
        (b"GET /health HTTP/1.0\r\n\r\n", b"200"),
        (b"nonsense\r\n\r\n", b"400"),
    ],
)
def test_other_requests_get_plain_answers(
    worker: InstantWorker, request_bytes: bytes, status: bytes
) -> None:
    """Unsupported framing, paths and methods are answered, then the connection closes."""
    answer = raw_exchange(worker.url, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status)


def test_a_refused_task_is_still_recorded() -> None:
    """401s are recorded with the headers that were sent, and use no scripted behaviour."""
    with InstantWorker(api_key="k") as worker:
        worker.script([Behaviour(status=503)])
        assert failure(worker.url, api_key="nope").status == 401
        assert worker.requests[0].headers["authorization"] == "Bearer nope"
        assert failure(worker.url, api_key="k").status == 503


def test_the_command_line_serves_until_sigterm() -> None:
    """``python -m mecha.testing.instant_worker`` prints its URL, serves, stops on SIGTERM."""
    command = [sys.executable, "-m", "mecha.testing.instant_worker", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert send(url, prompt="from afar").output == "ok: from afar"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
