"""``GET /openapi.json`` (the document, made once per app from its route table) and
``GET /docs`` (Swagger UI, vendored under static/vendor/swagger-ui, no script from
elsewhere and none inline). Both are open: they describe the API and reveal nothing of
the server's data.

``STATIC`` is served at ``/static`` (``create_app``): the vendored assets, this page's own
script (static/docs/docs.js), the dashboard's CSS and JS (static/ui/).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

STATIC = Path(__file__).resolve().parent / "static"

#: Swagger UI needs nothing beyond its own files: its styles come from its stylesheet and
#: the DOM (no <style> element), its icons are SVG and data: URIs in that stylesheet, and
#: it fetches the document from here; no eval, no inline script, no frames
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mecha API</title>
<link rel="icon" href="static/docs/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="static/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"><noscript>The API's description is at <a href="openapi.json">
openapi.json</a>.</noscript></div>
<script src="static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="static/docs/docs.js"></script>
</body>
</html>
"""


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document of this API (made from the route table the app is built from)."""
    return JSONResponse(request.app.state.openapi())


async def docs_page(request: Request) -> Response:
    """The document rendered by Swagger UI, served from this server (no CDN)."""
    return HTMLResponse(
        DOCS_PAGE,
        headers={
            "Content-Security-Policy": DOCS_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
