"""The lean HTTP/1.1 client against real servers on loopback: framing, caps, keep-alive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from mecha.runtimes.http1 import BodyTooLarge, HTTPError, Pool
from mecha.testing.instant_worker import InstantWorker

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(answer: bytes, *, close: bool = True) -> AsyncIterator[str]:
    """A server that reads one request head and writes ``answer`` verbatim."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                return
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length")), 0,
            )  # fmt: skip
            await reader.readexactly(length)
            writer.write(answer)
            await writer.drain()
            if close:
                writer.close()
                return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.sleep(0)


def run(coro: Awaitable[object]) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_a_post_and_its_json_answer_over_keep_alive() -> None:
    async def go() -> None:
        pool = Pool()
        with InstantWorker() as worker:
            for n in range(3):
                body = b'{"id": "t%d", "prompt": "hello", "context": {}}' % n
                answer = await pool.request(
                    "POST", worker.url + "/task", body=body, limit=1 << 20,
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip
                assert answer.status == 200
                assert b"ok: hello" in answer.body
            assert [r.id for r in worker.requests] == ["t0", "t1", "t2"]
        await pool.close()

    run(go())


def test_chunked_answers_are_joined() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )

    async def go() -> None:
        async with raw_server(answer, close=False) as url:
            pool = Pool()
            got = await pool.request("GET", url, limit=100)
            await pool.close()
            assert got.body == b"hello, world"

    run(go())


def test_an_answer_without_length_is_read_to_the_close() -> None:
    async def go() -> None:
        async with raw_server(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it") as url:
            got = await Pool().request("GET", url, limit=100)
            assert (got.status, got.body) == (200, b"all of it")

    run(go())


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + b"x" * 50,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n"
        + b"x" * 50
        + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 50,
    ],
    ids=["content-length", "chunked", "to-close"],
)
def test_bodies_over_the_limit_are_refused_whatever_the_framing(answer: bytes) -> None:
    async def go() -> None:
        async with raw_server(answer) as url:
            with pytest.raises(BodyTooLarge):
                await Pool().request("GET", url, limit=40)

    run(go())


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"SSH-2.0-OpenSSH\r\n", "not an HTTP"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed before the whole"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        (b"", "closed the connection without answering"),
    ],
)
def test_broken_answers_are_http_errors(answer: bytes, words: str) -> None:
    async def go() -> None:
        async with raw_server(answer) as url:
            with pytest.raises(HTTPError) as caught:
                await Pool().request("GET", url, limit=100)
            assert words in str(caught.value)

    run(go())


def test_connection_refused_is_named() -> None:
    async def go() -> None:
        with InstantWorker() as worker:
            url = worker.url
        with pytest.raises(HTTPError) as caught:
            await Pool().request("GET", url + "/health", limit=100)
        assert "connection refused" in str(caught.value)

    run(go())


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def go() -> None:
        async with raw_server(answer, close=True) as url:  # closes after each answer
            pool = Pool()
            for _ in range(3):
                got = await pool.request("GET", url, limit=100)
                assert got.body == b"ok"
            await pool.close()

    run(go())


def test_a_header_with_a_line_break_is_refused() -> None:
    async def go() -> None:
        with pytest.raises(HTTPError):
            await Pool().request("GET", "http://127.0.0.1:9/", headers={"X": "a\r\nB: c"}, limit=1)

    run(go())
