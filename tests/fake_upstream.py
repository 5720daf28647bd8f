"""A scripted HTTP server on 127.0.0.1: replays recorded answers and misbehaves on cue.

Real sockets and real HTTP/1.1 (chunked bodies, Connection: close), so the adapters'
HTTP client meets a slow first byte, a cut stream or a 503 exactly as it would from a
model server. Routes are "METHOD /path" → a Reply, or a function of the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STATUS_TEXT = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fixture(name: str) -> Any:
    """A documented API answer from tests/fixtures, e.g. "ollama/chat.json"."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@dataclass
class Reply:
    """What to answer: a whole body, or chunks (sent with chunked encoding)."""

    status: int = 200
    body: bytes | list[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds before anything is sent (a slow first byte)
    delay: float = 0.0
    #: seconds between chunks
    pause: float = 0.0
    #: close the connection before the chunked body's end (a broken stream)
    cut: bool = False
    #: close the connection without answering at all
    drop: bool = False


def json_reply(data: Any, status: int = 200, **options: Any) -> Reply:
    """A JSON body."""
    headers = {"Content-Type": "application/json", **options.pop("headers", {})}
    return Reply(status, json.dumps(data).encode(), headers, **options)


def ndjson_reply(objects: list[Any], **options: Any) -> Reply:
    """One JSON object a line, one chunk each (Ollama's stream)."""
    chunks = [json.dumps(item).encode() + b"\n" for item in objects]
    return Reply(200, chunks, {"Content-Type": "application/x-ndjson"}, **options)


def sse_reply(payloads: list[str], **options: Any) -> Reply:
    """One ``data:`` event per payload, one chunk each (the OpenAI-style stream)."""
    chunks = [f"data: {payload}\n\n".encode() for payload in payloads]
    return Reply(200, chunks, {"Content-Type": "text/event-stream"}, **options)


@dataclass
class Seen:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


Route = Reply | Callable[[Seen], Reply]


class FakeUpstream:
    """``async with FakeUpstream({...}) as server:`` then talk to ``server.url``."""

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)
        self.seen: list[Seen] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FakeUpstream:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            seen = await _read_request(reader)
            self.seen.append(seen)
            route = self.routes.get(f"{seen.method} {seen.path}")
            reply = route(seen) if callable(route) else route
            await _send(writer, reply or json_reply({"error": "no such route"}, 404))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._tasks.discard(task)


async def _read_request(reader: asyncio.StreamReader) -> Seen:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    request_line, *lines = head.strip().split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    body = json.loads(raw) if raw else None
    return Seen(method, target.split("?", 1)[0], headers, body)


async def _send(writer: asyncio.StreamWriter, reply: Reply) -> None:
    await asyncio.sleep(reply.delay)
    if reply.drop:
        return
    chunked = isinstance(reply.body, list)
    headers = {"Connection": "close", **reply.headers}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        assert isinstance(reply.body, bytes)
        headers["Content-Length"] = str(len(reply.body))
    head = f"HTTP/1.1 {reply.status} {STATUS_TEXT.get(reply.status, 'Status')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    writer.write(head.encode())
    if not chunked:
        assert isinstance(reply.body, bytes)
        writer.write(reply.body)
        await writer.drain()
        return
    for chunk in reply.body:
        assert isinstance(chunk, bytes)
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
        await asyncio.sleep(reply.pause)
    if not reply.cut:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


class ThreadedUpstream:
    """A FakeUpstream on its own event loop in a thread, for a server in another process:
    ``with ThreadedUpstream({...}) as server:`` then point the worker at ``server.url``."""

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.upstream = FakeUpstream(routes)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where it listens."""
        return self.upstream.url

    @property
    def seen(self) -> list[Seen]:
        """The requests received so far."""
        return self.upstream.seen

    def __enter__(self) -> ThreadedUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.upstream.__aenter__(), self._loop).result(60)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.upstream.close(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(60)
        self._loop.close()
