"""A loopback HTTP proxy in front of a real model server: what each chat request asked for,
and a gate that holds them until the test opens it.

The adapter under test talks to ``gate.url`` as it would to the model API; every request
goes on to the real server unchanged and its answer comes back unchanged. POSTs are
recorded (their JSON bodies) in arrival order; while the gate is shut they wait before
being passed on, so a test can keep a task in flight for as long as it needs. GETs
(health checks) are never held.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

HOLD_LIMIT = 120.0


class ModelGate:
    """``with ModelGate(llama_server.url) as gate:`` then point adapters at ``gate.url``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[dict[str, Any]] = []
        self._open = threading.Event()
        self._open.set()
        self._arrived = threading.Condition()
        self._client = httpx.Client(timeout=HOLD_LIMIT, trust_env=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def shut(self) -> None:
        """Hold every POST from now on until ``open``."""
        self._open.clear()

    def open(self) -> None:
        """Let held and later POSTs through."""
        self._open.set()

    def wait_for(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The recorded POST bodies once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.requests)} model requests, not {count}")
                self._arrived.wait(left)
            return list(self.requests)

    def forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        if method == "POST":
            with self._arrived:
                self.requests.append(json.loads(body or b"null"))
                self._arrived.notify_all()
            self._open.wait(HOLD_LIMIT)
        return self._client.request(method, self.upstream + path, content=body, headers=headers)

    def close(self) -> None:
        """Open the gate, stop serving."""
        self._open.set()
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def __enter__(self) -> ModelGate:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _handler(gate: ModelGate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._pass("GET")

        def do_POST(self) -> None:
            self._pass("POST")

        def _pass(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            wanted = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in {"authorization", "content-type"}
            }
            try:
                answer = gate.forward(method, self.path, body, wanted)
            except httpx.HTTPError as exc:
                self._send(502, json.dumps({"error": str(exc)}).encode(), "application/json")
                return
            kind = answer.headers.get("content-type", "application/json")
            self._send(answer.status_code, answer.content, kind)

        def _send(self, status: int, data: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    return Handler
