"""A cap on the size of a request's headers, at the HTTP protocol and again in the app.

uvicorn's default protocol with ``uvicorn[standard]`` is httptools, which sets no limit on
header size: a 100 MiB header is read whole before any route sees the request. ``mecha
serve`` runs uvicorn's h11 protocol instead, with h11's ``max_incomplete_event_size`` at
``MAX_HEADER_BYTES``: once the request line and headers received so far pass that size, h11
stops with its "431" hint. uvicorn answers every h11 protocol error with a plain ``400`` and
closes the connection; ``HeaderCappedH11`` answers this one ``431`` with Mecha's JSON error
instead, and closes the connection all the same (the rest of the request is never read).

``too_large`` is the same limit in the app (the sum of the header names' and values' lengths),
so it holds whatever server runs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: the most a request's headers may take (bytes): request line and headers for h11, names
#: and values for ``too_large``
MAX_HEADER_BYTES = 64 * 1024

TOO_LARGE_MESSAGE = f"the request's headers are larger than {MAX_HEADER_BYTES // 1024} KB"
TOO_LARGE_HINT = "send fewer or shorter headers"


def too_large(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether ASGI ``headers`` (a scope's) take more than MAX_HEADER_BYTES."""
    total = 0
    for name, value in headers:
        total += len(name) + len(value)
        if total > MAX_HEADER_BYTES:
            return True
    return False


class HeaderCappedH11(H11Protocol):
    """uvicorn's h11 protocol, answering ``431`` (JSON) to headers over h11's size limit."""

    def send_400_response(self, msg: str) -> None:
        pending, _ = self.conn.trailing_data
        limit = self.config.h11_max_incomplete_event_size
        if self.conn.their_state is not h11.ERROR or limit is None or len(pending) <= limit:
            super().send_400_response(msg)
            return
        self.logger.warning("request refused: its headers are larger than %d bytes", limit)
        body = json.dumps({"error": TOO_LARGE_MESSAGE, "hint": TOO_LARGE_HINT}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        answer = h11.Response(
            status_code=431, headers=headers, reason=b"Request Header Fields Too Large"
        )
        self.transport.write(self.conn.send(answer) or b"")
        self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
        self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        self.transport.close()
