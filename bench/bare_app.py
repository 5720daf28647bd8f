"""The baseline for bench/ingest.py: an ASGI app that only verifies the webhook signature.

Same stack as `mecha serve` (Starlette on uvicorn with httptools and uvloop), no parsing, no
storage. Run: ``python bench/bare_app.py PORT SECRET``.
"""

from __future__ import annotations

import hashlib
import hmac
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def make_app(secret: bytes) -> Starlette:
    async def webhook(request: Request) -> Response:
        body = await request.body()
        digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
        given = request.headers.get("x-hub-signature-256", "")
        if not hmac.compare_digest(f"sha256={digest}", given):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        return JSONResponse({"status": "received"}, status_code=202)

    return Starlette(routes=[Route("/webhook/github", webhook, methods=["POST"])])


if __name__ == "__main__":
    port, secret = int(sys.argv[1]), sys.argv[2].encode()
    uvicorn.run(
        make_app(secret), host="127.0.0.1", port=port, log_level="warning", access_log=False,
        server_header=False,
    )  # fmt: skip
