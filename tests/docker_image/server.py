"""A tiny worker for the Docker runtime's tests: the worker contract, standard library only.

GET /health answers 200 (or the status in MECHA_TEST_HEALTH); POST /task answers
``{"output": "echo: <prompt>", "metadata": {"request": <the task>, "env": <its environment>,
"env_sha256": <each variable's SHA-256>}}``
(a prompt "sleep N" answers after N seconds). When WORKER_API_KEY is set, /task demands it as
``Authorization: Bearer <key>`` or ``X-API-Key``. Runs as any user on port 8080.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PORT = 8080
MAX_BODY = 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    """The two routes of the worker contract."""

    def do_GET(self) -> None:
        if self.path != "/health":
            self._answer(404, {"error": "not found"})
            return
        status = int(os.environ.get("MECHA_TEST_HEALTH", "200"))
        self._answer(status, {"status": "ok" if status == 200 else "unhealthy"})

    def do_POST(self) -> None:
        if self.path != "/task":
            self._answer(404, {"error": "not found"})
            return
        if not self._authorised():
            self._answer(401, {"error": "unauthorized"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, {"error": "too large"})
            return
        try:
            task = json.loads(self.rfile.read(length))
            prompt = task["prompt"]
        except (ValueError, KeyError, TypeError):
            self._answer(400, {"error": "invalid task"})
            return
        if isinstance(prompt, str) and prompt.startswith("sleep "):
            time.sleep(float(prompt.split()[1]))  # a slow model, for timeout tests
        # what the worker was given, for tests that look for leaked secrets
        # (a stored result is redacted: the digests show which secret values it was given)
        digests = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in os.environ.items()}
        seen = {"request": task, "env": dict(os.environ), "env_sha256": digests}
        self._answer(200, {"output": f"echo: {prompt}", "metadata": seen})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.path != "/health":  # health is polled often; its lines would bury the rest
            super().log_request(code, size)

    def _authorised(self) -> bool:
        key = os.environ.get("WORKER_API_KEY", "")
        if not key:
            return True
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        given = self.headers.get("X-API-Key") or bearer
        return hmac.compare_digest(given.encode(), key.encode())

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    print(f"test worker listening on :{PORT} as uid {os.getuid()}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
