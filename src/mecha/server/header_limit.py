"""A cap on the size of a request's headers, at the HTTP protocol and again in the app.

uvicorn's default protocol when httptools is installed (a dependency of Mecha) sets no limit on
header size: a 100 MiB header is read whole before any route sees the request.
``HeaderCappedHttpTools`` keeps httptools (h11, uvicorn's other protocol, can cap headers
but costs the webhook path about a tenth of its throughput and collapses its paced latency:
``bench/ingest.py``) and feeds the parser at most ``MAX_HEADER_BYTES`` of a request's head:
a request whose head is not complete by then is answered ``431`` with Mecha's JSON error
and its connection closed; the rest is never read. A request httptools cannot parse (a
``Content-Length`` that is not one number, two of them, one beside ``Transfer-Encoding``)
gets the same JSON error shape with ``400`` and the parser's reason, where uvicorn would
answer ``text/plain``.

``too_large`` is the same limit in the app (the sum of the header names' and values' lengths),
so it holds whatever server runs it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: the most a request's headers may take (bytes): request line and headers for h11, names
#: and values for ``too_large``
MAX_HEADER_BYTES = 64 * 1024

TOO_LARGE_MESSAGE = f"the request's headers are larger than {MAX_HEADER_BYTES // 1024} KB"
TOO_LARGE_HINT = "send fewer or shorter headers"
MALFORMED_HINT = "send a well-formed HTTP/1.1 request"
CONTENT_LENGTH_HINT = (
    "send one Content-Length header of decimal digits equal to the body's size in bytes "
    "(or Transfer-Encoding: chunked instead of it)"
)


def too_large(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether ASGI ``headers`` (a scope's) take more than MAX_HEADER_BYTES."""
    total = 0
    for name, value in headers:
        total += len(name) + len(value)
        if total > MAX_HEADER_BYTES:
            return True
    return False


class HeaderCappedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering ``431`` (JSON) to a head over MAX_HEADER_BYTES.

    Only bytes that arrive while a request's head is incomplete are counted; they are fed
    to the parser in slices that never pass the cap, so it never holds more than that.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0
        self._in_head = True
        super().connection_made(transport)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0  # the next request's head starts
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        while self._in_head and data:
            room = MAX_HEADER_BYTES - self._head_bytes
            if room <= 0:
                self._refuse()
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self.transport.is_closing():
                return
        if data:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request httptools refused, as JSON; called while the parser's
        error is being handled, so its reason (a fixed text of llhttp's) is named."""
        error = sys.exception()
        reason = str(error) if error is not None else ""
        message = f"the request is not valid HTTP/1.1: {reason}" if reason else msg
        hint = CONTENT_LENGTH_HINT if "Content-Length" in reason else MALFORMED_HINT
        self._answer(b"400 Bad Request", message, hint)

    def _refuse(self) -> None:
        self.logger.warning(
            "request refused: its headers are larger than %d bytes", MAX_HEADER_BYTES
        )
        self._answer(b"431 Request Header Fields Too Large", TOO_LARGE_MESSAGE, TOO_LARGE_HINT)

    def _answer(self, status: bytes, message: str, hint: str) -> None:
        """Answer ``status`` with Mecha's JSON error and close the connection."""
        body = json.dumps({"error": message, "hint": hint}).encode()
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()
