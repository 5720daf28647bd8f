"""A lean HTTP/1.1 client for the worker contract's hot path: keep-alive, capped bodies.

``mecha serve`` sends every task over this. httpx spent more CPU per request than the rest
of dispatch together (a pool scan of every connection per request, and anyio layers), so
the one request shape the dispatcher makes — a JSON POST, a JSON answer — gets a client of
its own on asyncio streams: requests with Content-Length; answers with Content-Length,
chunked, or read to the close; bodies capped while they are read.

Timeouts are the caller's (``asyncio.timeout``): a cancelled request closes its connection
instead of returning it to the pool. A reused keep-alive connection that the server had
closed meanwhile is detected before any answer byte arrives and the request goes once more
on a fresh connection, as browsers and urllib3 do.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: the longest status line plus headers accepted
MAX_HEAD = 64 * 1024


class HTTPError(Exception):
    """The exchange failed: no connection, a broken or malformed answer."""


class BodyTooLarge(HTTPError):
    """The answer's body is larger than the caller's limit."""

    def __init__(self, status: int, limit: int) -> None:
        super().__init__(f"the answer's body is larger than {limit} bytes")
        self.status = status
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: status, headers (lowercase names), body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used: int = 0

    def close(self) -> None:
        self.writer.close()


@dataclass(eq=False)
class Pool:
    """Keep-alive connections per (scheme, host, port), at most ``keep`` idle each."""

    keep: int = 64
    _idle: dict[tuple[str, str, int], list[_Connection]] = field(default_factory=dict)
    _ssl: ssl.SSLContext | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        limit: int,
    ) -> Response:
        """Send one request; the whole answer, its body at most ``limit`` bytes."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HTTPError(f"{url} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        host = parts.netloc.rpartition("@")[2]
        head = _head(method, target, host, headers or {}, len(body))
        for _ in range(2):
            conn = await self._take(key)
            reused = conn.used > 0
            try:
                conn.writer.write(head + body)
                await conn.writer.drain()
                response, keep = await _read_response(conn.reader, method, limit)
            except _ClosedBeforeAnswer:
                conn.close()
                if reused:
                    continue  # the server closed an idle connection: once more, fresh
                raise HTTPError("the server closed the connection without answering") from None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()  # ValueError: asyncio's line limit (LimitOverrunError is one)
                raise HTTPError(_reason(exc) if isinstance(exc, OSError) else str(exc)) from exc
            except BaseException:
                conn.close()
                raise
            conn.used += 1
            if keep:
                self._give(key, conn)
            else:
                conn.close()
            return response
        raise HTTPError("the server closed the connection without answering")

    async def close(self) -> None:
        """Close every idle connection."""
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def _take(self, key: tuple[str, str, int]) -> _Connection:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        scheme, host, port = key
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=MAX_HEAD)
        except OSError as exc:
            raise HTTPError(_reason(exc)) from exc
        return _Connection(reader, writer)

    def _give(self, key: tuple[str, str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self.keep:
            idle.append(conn)
        else:
            conn.close()


class _ClosedBeforeAnswer(Exception):
    pass


def _head(method: str, target: str, host: str, headers: Mapping[str, str], length: int) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise HTTPError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_response(
    reader: asyncio.StreamReader, method: str, limit: int
) -> tuple[Response, bool]:
    """The answer and whether the connection may be used again."""
    try:
        status_line = await reader.readline()
    except ConnectionResetError:
        raise _ClosedBeforeAnswer from None
    if not status_line:
        raise _ClosedBeforeAnswer
    try:
        version, code, *_ = status_line.decode("latin-1").split(" ", 2)
        status = int(code)
    except ValueError:
        raise HTTPError(f"not an HTTP answer: {status_line[:80]!r}") from None
    if not version.startswith("HTTP/1."):
        raise HTTPError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
    headers = await _read_headers(reader)
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Response(status, headers, b""), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, status, limit)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise HTTPError(f"bad Content-Length {headers['content-length']!r}") from None
        if length > limit:
            raise BodyTooLarge(status, limit)
        body = await _exactly(reader, length)
    else:
        body = await _to_close(reader, status, limit)
        keep = False
    return Response(status, headers, body), keep


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    size = 0
    while True:
        line = await reader.readline()
        size += len(line)
        if size > MAX_HEAD:
            raise HTTPError("the answer's headers are too large")
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise HTTPError("the connection closed in the middle of the headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise HTTPError(f"malformed header line {line[:80]!r}")
        key = name.strip().lower()
        text = value.strip()
        headers[key] = f"{headers[key]}, {text}" if key in headers else text


async def _exactly(reader: asyncio.StreamReader, length: int) -> bytes:
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise HTTPError("the connection closed before the whole answer arrived") from None


async def _read_chunked(reader: asyncio.StreamReader, status: int, limit: int) -> bytes:
    body = bytearray()
    while True:
        line = await reader.readline()
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HTTPError(f"malformed chunk size {line[:40]!r}") from None
        if size == 0:
            await _read_headers(reader)  # trailers
            return bytes(body)
        if len(body) + size > limit:
            raise BodyTooLarge(status, limit)
        body += await _exactly(reader, size)
        await _exactly(reader, 2)


async def _to_close(reader: asyncio.StreamReader, status: int, limit: int) -> bytes:
    body = bytearray()
    while chunk := await reader.read(65536):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(status, limit)
    return bytes(body)


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
