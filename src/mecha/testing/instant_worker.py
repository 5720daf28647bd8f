"""A worker that answers at once, speaking the worker contract on loopback: ``InstantWorker``.

A real HTTP/1.1 server (asyncio, keep-alive, Content-Length bodies) on ``127.0.0.1`` and
a free port, serving from its own event loop in a daemon thread, so synchronous tests
can use it. Every ``POST /task`` is recorded; what it answers is a ``Behaviour``::

    with InstantWorker(api_key="k") as worker:
        worker.set(delay=0.2)                                # the default from now on
        worker.script([Behaviour(status=429, retry_after="2"), Behaviour()])  # next two
        ...                                                  # send tasks to worker.url
        worker.wait_for(3)
        assert worker.requests[0].context == {}

Requests without the right ``Authorization: Bearer`` are recorded too, and answered 401
without using a behaviour. For benchmarks in another process::

    python -m mecha.testing.instant_worker --port 0 [--delay S] [--api-key K]

prints its URL on one line and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import FrameType, TracebackType
from typing import Any

import orjson

__all__ = ["Behaviour", "InstantWorker", "Received", "main"]

#: the largest request body accepted (stock worker images answer 413 above it)
MAX_BODY = 10 * 1024 * 1024
HUGE_BYTES = 11 * 1024 * 1024
GARBAGE = b"<html><body>502 Bad Gateway: this is not JSON</body></html>"
_HEAD_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the worker answers one task; the defaults answer 200 with a small result."""

    #: seconds to wait before answering
    delay: float = 0.0
    #: HTTP status to answer
    status: int = 200
    #: the JSON object to answer; None means the default result (or, for a status other
    #: than 200, ``{"error": "worker busy"}`` on 429 and ``{"error": "failed"}`` otherwise)
    result: Mapping[str, Any] | None = None
    #: answer 200 with a body that is not JSON
    garbage: bool = False
    #: answer 200 with a valid JSON object of about 11 MB
    huge: bool = False
    #: never answer; the connection is dropped when the worker closes
    hang: bool = False
    #: after ``delay``, wait until ``open_gate()`` is called (or the worker closes)
    gated: bool = False
    #: the ``Retry-After`` header to send, e.g. ``"2"`` with ``status=429``
    retry_after: str | None = None
    #: ``metadata.exit_code`` to answer
    exit_code: int | None = None
    #: an ``error`` field to answer
    error: str | None = None
    #: drop the connection without answering
    close: bool = False
    #: the exact body to answer (overrides result, garbage and huge)
    body: bytes | None = None
    #: send the body with ``Transfer-Encoding: chunked`` instead of a Content-Length
    chunked: bool = False


@dataclass(slots=True)
class Received:
    """One ``POST /task`` the worker received."""

    id: str
    prompt: str
    context: dict[str, Any]
    #: lowercase names
    headers: dict[str, str]
    #: ``time.time()`` when the request was read, and when its answer was written
    received_at: float
    #: the request body as sent
    body: bytes = b""
    finished_at: float | None = field(default=None)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False


class InstantWorker:
    """The worker HTTP contract on a loopback port, in a daemon thread; a context manager."""

    def __init__(self, api_key: str = "", *, port: int = 0, record: bool = True) -> None:
        self.api_key = api_key
        #: what ``GET /health`` answers
        self.health_status = 200
        #: the highest number of ``/task`` requests handled at once
        self.max_in_flight = 0
        #: how many ``/task`` requests arrived (also when ``record`` is off)
        self.received = 0
        #: the headers of every ``GET /health`` (lowercase names), oldest first
        self.health_requests: list[dict[str, str]] = []
        self._record = record
        self._in_flight = 0
        self._default = Behaviour()
        self._script: collections.deque[Behaviour] = collections.deque()
        self._requests: list[Received] = []
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._release: asyncio.Event | None = None
        self._gate: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._port = 0
        self._thread = threading.Thread(
            target=self._run, args=(port,), name="instant-worker", daemon=True
        )
        self._thread.start()
        self._ready.wait(10.0)
        if self._failed is not None or not self._port:
            self.close()
            raise RuntimeError(f"the instant worker could not start: {self._failed!r}")

    def __enter__(self) -> InstantWorker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def requests(self) -> list[Received]:
        """The tasks received so far, oldest first (a copy)."""
        with self._changed:
            return list(self._requests)

    def set(self, **fields: Any) -> None:
        """Make ``Behaviour(**fields)`` the default answer (unnamed fields take their defaults)."""
        behaviour = Behaviour(**fields)
        with self._changed:
            self._default = behaviour

    def script(self, behaviours: Iterable[Behaviour]) -> None:
        """Answer the next tasks with ``behaviours``, in order; then the default again."""
        items = list(behaviours)
        with self._changed:
            self._script.extend(items)

    def open_gate(self) -> None:
        """Let ``gated`` answers go (those waiting now and any later ones)."""
        loop, gate = self._loop, self._gate
        if loop is not None and gate is not None and not loop.is_closed():
            loop.call_soon_threadsafe(gate.set)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        """Block until ``count`` tasks were received; AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.received < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    ids = ", ".join(r.id for r in self._requests[-10:]) or "none"
                    raise AssertionError(
                        f"the instant worker at {self.url} received {self.received} of "
                        f"{count} tasks within {timeout:g}s (latest ids: {ids})"
                    )
                self._changed.wait(left)
            return list(self._requests)

    def close(self) -> None:
        """Stop serving: hung and delayed requests are dropped, the thread is joined."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stopping.set)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(10.0)

    # ------------------------------------------------------------------ the server thread

    def _run(self, port: int) -> None:
        try:
            asyncio.run(self._serve(port))
        except BaseException as exc:  # reported to the constructor
            self._failed = exc
            self._ready.set()

    async def _serve(self, port: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping, self._release, self._gate = (
            asyncio.Event(),
            asyncio.Event(),
            asyncio.Event(),
        )
        server = await asyncio.start_server(
            self._connection, "127.0.0.1", port, limit=_HEAD_LIMIT, backlog=1024
        )
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopping.wait()
        server.close()
        self._release.set()
        self._gate.set()
        # connections idle in keep-alive would keep wait_closed() waiting (Python 3.12+)
        handlers = asyncio.all_tasks() - {asyncio.current_task()}
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._exchange(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except (asyncio.LimitOverrunError, ValueError, UnicodeError):
            writer.write(_encode(_Reply(400, b'{"error":"bad request"}'), close=True))
        finally:
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; False when the connection is to be closed."""
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        keep = _keep_alive(version, headers.get("connection", ""))
        if method == "GET" and target == "/health":
            if self._record:
                self.health_requests.append(headers)
            return _answer(writer, self._health(), keep)
        if method != "POST" or target != "/task":
            reply = _Reply(404 if target not in ("/health", "/task") else 405, b"{}")
            return _answer(writer, reply, keep)
        length = headers.get("content-length", "")
        if not length.isdigit() or "transfer-encoding" in headers:
            return _answer(writer, _Reply(411, b'{"error":"length required"}'), False)
        if int(length) > MAX_BODY:
            return _answer(writer, _Reply(413, b'{"error":"request too large"}'), False)
        body = await reader.readexactly(int(length))
        return await self._task(writer, headers, body, keep)

    def _health(self) -> _Reply:
        status = self.health_status
        text = b"ok" if status == 200 else b"busy" if status == 503 else b"unhealthy"
        return _Reply(status, text, "text/plain")

    async def _task(
        self, writer: asyncio.StreamWriter, headers: dict[str, str], body: bytes, keep: bool
    ) -> bool:
        data = _decode(body)
        received = Received(
            id=str(data.get("id", "")),
            prompt=str(data.get("prompt", "")),
            context=dict(data["context"]) if isinstance(data.get("context"), dict) else {},
            headers=headers,
            received_at=time.time(),
            body=body,
        )
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        self._arrived(received)

        def answer(reply: _Reply) -> bool:
            # finished before the answer leaves: the client may look the moment it arrives
            received.finished_at = time.time()
            return _answer(writer, reply, keep)

        try:
            if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
                return answer(_Reply(401, b'{"error":"unauthorized"}'))
            if not received.prompt:
                return answer(_Reply(400, b'{"error":"missing prompt"}'))
            behaviour = self._next()
            if behaviour.delay > 0:
                await asyncio.sleep(behaviour.delay)
            if behaviour.gated:
                assert self._gate is not None
                await self._gate.wait()
            if behaviour.hang:
                assert self._release is not None
                await self._release.wait()
                return False
            if behaviour.close:
                return False
            return answer(_reply(behaviour, received.prompt))
        finally:
            if received.finished_at is None:
                received.finished_at = time.time()
            self._in_flight -= 1

    def _arrived(self, received: Received) -> None:
        with self._changed:
            self.received += 1
            if self._record:
                self._requests.append(received)
            self._changed.notify_all()

    def _next(self) -> Behaviour:
        with self._changed:
            return self._script.popleft() if self._script else self._default


def _decode(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _keep_alive(version: str, connection: str) -> bool:
    token = connection.lower()
    return "keep-alive" in token if version == "HTTP/1.0" else "close" not in token


def _answer(writer: asyncio.StreamWriter, reply: _Reply, keep: bool) -> bool:
    writer.write(_encode(reply, close=not keep))
    return keep


def _encode(reply: _Reply, *, close: bool) -> bytes:
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = "Unknown"
    size = "Transfer-Encoding: chunked" if reply.chunked else f"Content-Length: {len(reply.body)}"
    lines = [
        f"HTTP/1.1 {reply.status} {phrase}",
        f"Content-Type: {reply.content_type}",
        size,
        *(f"{name}: {value}" for name, value in reply.headers),
    ]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (_chunks(reply.body) if reply.chunked else reply.body)


def _chunks(body: bytes, size: int = 64 * 1024) -> bytes:
    parts = (body[start : start + size] for start in range(0, len(body), size))
    return b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def _reply(behaviour: Behaviour, prompt: str) -> _Reply:
    extra = (("Retry-After", behaviour.retry_after),) if behaviour.retry_after else ()
    kind = "text/html" if behaviour.garbage and behaviour.body is None else "application/json"
    if behaviour.body is not None:
        body = behaviour.body
    elif behaviour.garbage:
        body = GARBAGE
    elif behaviour.huge:
        body = _huge()
    else:
        body = orjson.dumps(_result(behaviour, prompt))
    return _Reply(behaviour.status, body, kind, extra, behaviour.chunked)


def _result(behaviour: Behaviour, prompt: str) -> dict[str, Any]:
    if behaviour.result is not None:
        result = dict(behaviour.result)
    elif behaviour.status == 200:
        result = {"output": f"ok: {prompt[:40]}", "metadata": {"exit_code": 0, "model": "instant"}}
    else:
        return {"error": "worker busy" if behaviour.status == 429 else "failed"}
    if behaviour.exit_code is not None:
        metadata = result.get("metadata")
        metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
        result["metadata"] = {**metadata, "exit_code": behaviour.exit_code}
    if behaviour.error is not None:
        result["error"] = behaviour.error
    return result


@functools.cache
def _huge() -> bytes:
    return b'{"output": "' + b"x" * HUGE_BYTES + b'"}'


def main(argv: list[str] | None = None) -> int:
    """Serve on ``--port`` until SIGTERM or SIGINT; print the URL on one line first."""
    parser = argparse.ArgumentParser(
        prog="python -m mecha.testing.instant_worker",
        description="A worker that answers every task at once (for benchmarks).",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: a free one)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--api-key", default="", help="Bearer key to require")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with InstantWorker(api_key=args.api_key, port=args.port, record=False) as worker:
        worker.set(delay=args.delay)
        print(worker.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
