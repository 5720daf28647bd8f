"""The worker HTTP contract (upstream §6) on the standard library's threading server.

* ``GET /health``: 200 ``{"status": "ok", "backend": ...}``; 503 ``{"status": "busy"}``
  while a task runs (the engine counts a 503 that says busy as healthy). Never needs
  the key.
* ``POST /task``: 401 without the key (when ``WORKER_API_KEY`` is set), 411 without a
  Content-Length, 413 over 10 MB, 400 for a body that is not a JSON object with a
  non-empty ``prompt``, 429 ``{"error": "worker busy"}`` while another task runs, else
  200 with the result contract.
"""

from __future__ import annotations

import hmac
import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mecha_worker import __version__, answer
from mecha_worker.tasks import Task, Worker

log = logging.getLogger("mecha_worker")
MAX_BODY = 10 * 1024 * 1024
MAX_ID = 128
#: seconds a client may take to send its request
READ_TIMEOUT = 60


class BadTask(Exception):
    """The body is not a task."""


class WorkerServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its Worker."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], worker: Worker) -> None:
        self.worker = worker
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    """One connection; keep-alive, every answer JSON with a Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = f"mecha-worker/{__version__}"
    timeout = READ_TIMEOUT
    server: WorkerServer

    def do_GET(self) -> None:
        if self._path() != "/health":
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found: use GET /health"})
            return
        worker = self.server.worker
        status = "busy" if worker.busy else "ok"
        code = HTTPStatus.SERVICE_UNAVAILABLE if worker.busy else HTTPStatus.OK
        body = {"status": status, "backend": worker.config.backend, "version": __version__}
        self._send(code, body)

    def do_POST(self) -> None:
        if self._path() != "/task":
            self._refuse(HTTPStatus.NOT_FOUND, "not found: use POST /task")
            return
        if not self._authorized():
            self._refuse(HTTPStatus.UNAUTHORIZED, "unauthorized: send Authorization: Bearer <key>")
            return
        body = self._body()
        if body is None:
            return
        try:
            task = _task(body)
        except BadTask as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._run(task)

    def _run(self, task: Task) -> None:
        worker = self.server.worker
        if not worker.try_start():
            self._send(HTTPStatus.TOO_MANY_REQUESTS, {"error": "worker busy"})
            return
        try:
            log.info("task %s: started (%s)", task.id or "-", worker.config.backend)
            result = worker.run(task)
        except Exception as exc:
            log.exception("task %s: the worker failed", task.id or "-")
            result = answer.internal_error(
                f"internal error: {type(exc).__name__}", backend=worker.config.backend
            )
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, result)
            return
        finally:
            worker.finish()
        code = result.get("metadata", {}).get("exit_code")
        log.info("task %s: done, exit code %s", task.id or "-", code)
        self._send(HTTPStatus.OK, result)

    def _authorized(self) -> bool:
        key = self.server.worker.config.api_key
        if not key:
            return True
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer":
            token = self.headers.get("X-API-Key", "")
        return hmac.compare_digest(token.strip().encode(), key.encode())

    def _body(self) -> bytes | None:
        """The request body, or None after answering 411/413/400."""
        length = self.headers.get("Content-Length")
        if length is None:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
            return None
        try:
            size = int(length)
        except ValueError:
            size = -1
        if size < 0:
            self._refuse(HTTPStatus.BAD_REQUEST, f"bad Content-Length: {length[:40]!r}")
            return None
        if size > MAX_BODY:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
            return None
        return self.rfile.read(size)

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _refuse(self, code: HTTPStatus, message: str) -> None:
        """Answer without reading the body, then close the connection."""
        self.close_connection = True
        self._send(code, {"error": message})

    def _send(self, code: HTTPStatus, payload: dict[str, Any]) -> None:
        data = answer.encode(payload, secrets=self.server.worker.config.secrets)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self._path()
        level = logging.DEBUG if path == "/health" else logging.INFO
        log.log(level, "%s %s %s", self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        message = format % args
        level = logging.DEBUG if "timed out" in message else logging.WARNING
        log.log(level, "%s: %s", self.address_string(), message)


def _task(body: bytes) -> Task:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadTask(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadTask('the body must be a JSON object {"prompt": "..."}')
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadTask('"prompt" is missing or empty: send {"prompt": "..."}')
    context = data.get("context")
    if context is not None and not isinstance(context, dict):
        raise BadTask('"context" must be a JSON object')
    return Task(prompt=prompt, id=_task_id(data.get("id")), context=context or {})


def _task_id(value: Any) -> str:
    """The task id as logged and passed on: printable, at most MAX_ID characters."""
    text = value if isinstance(value, str) else str(value or "")
    return "".join(char if char.isprintable() else "?" for char in text[:MAX_ID])


def serve(worker: Worker) -> WorkerServer:
    """A server bound to the configured address (call ``serve_forever`` on it)."""
    config = worker.config
    return WorkerServer((config.host, config.port), worker)
