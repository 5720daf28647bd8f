"""/openapi.json: a valid OpenAPI 3.1 document, made from the route table the app is built
from, naming every route of the app (and nothing else), with its parameters and its auth."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from hypothesis import assume, given
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from mecha import __version__
from mecha.server.app import create_app
from mecha.server.openapi import openapi_document
from mecha.server.routes import API_ROUTES, ApiRoute, Auth
from mecha.server.state import AppState
from mecha.server.tasks_api import Refused, parse_task_request
from tests.unit.server.test_task_request import BODIES

DOCUMENT = openapi_document(API_ROUTES)


async def _nothing() -> None:
    return None


async def _page(request: Request) -> Response:
    return PlainTextResponse("a page")


def build(pages: tuple[BaseRoute, ...] = (), *, closed: bool = False) -> Starlette:
    """The app over a state nothing is asked of (the routes are what is looked at)."""
    state = AppState(
        store=cast(Any, None), pipeline=cast(Any, None), sources={},
        reads=ThreadPoolExecutor(max_workers=1), api_closed=closed,
    )  # fmt: skip
    return create_app(state, startup=_nothing, shutdown=_nothing, pages=pages)


def undocumented(app: Starlette, document: dict[str, Any]) -> list[str]:
    """Routes of ``app`` in the API (in the schema) the document does not name, and
    operations the document names that ``app`` does not serve."""
    served = set()
    for route in app.routes:
        if isinstance(route, Mount) or not getattr(route, "include_in_schema", False):
            continue
        assert isinstance(route, Route)
        served |= {f"{m} {route.path}" for m in route.methods or () if m != "HEAD"}
    named = {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops}
    return sorted(served ^ named)


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["info"]["version"] == __version__


def test_every_route_of_the_app_is_in_the_document_and_nothing_else() -> None:
    assert undocumented(build(), DOCUMENT) == []
    # pages outside the API (the dashboard) are left out by include_in_schema=False …
    hidden = Route("/ui", _page, include_in_schema=False)
    assert undocumented(build((hidden,)), DOCUMENT) == []
    # … and a route added without its description is found
    assert undocumented(build((Route("/extra", _page),)), DOCUMENT) == ["GET /extra"]
    trimmed = openapi_document([r for r in API_ROUTES if r.path != "/tasks"])
    assert undocumented(build(), trimmed) == ["GET /tasks"]


def test_the_app_serves_the_document_it_is_described_by() -> None:
    with TestClient(build()) as client:
        served = client.get("/openapi.json")
        page = client.get("/docs")
        script = client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert served.status_code == 200 and served.json() == json.loads(json.dumps(DOCUMENT))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy
    assert "<script>" not in page.text  # every script is a file of its own
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text


def test_the_description_stays_open_on_a_closed_api() -> None:
    with TestClient(build(closed=True)) as client:
        assert client.get("/events").status_code == 403
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200
        assert client.get("/static/docs/docs.js").status_code == 200


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_each_path_parameter_is_described(route: ApiRoute) -> None:
    in_path = set(re.findall(r"{(\w+)}", route.path))
    described = {p.name for p in route.params if p.where == "path"}
    assert in_path == described
    assert all(p.required for p in route.params if p.where == "path")
    assert route.description and route.summary


def test_operations_are_named_once_and_say_who_may_call_them() -> None:
    ids = [r.operation_id for r in API_ROUTES]
    assert len(ids) == len(set(ids))
    for route in API_ROUTES:
        operation = DOCUMENT["paths"][route.path][route.method.lower()]
        schemes = {name for entry in operation["security"] for name in entry}
        assert schemes == ({"bearer", "apiKey"} if route.auth is not Auth.OPEN else set())
        if route.auth is Auth.KEY:
            assert {"401", "403"} <= set(operation["responses"])
    assert set(DOCUMENT["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    # /health shows more with the key, but answers without one
    assert {} in DOCUMENT["paths"]["/health"]["get"]["security"]


def test_state_filters_list_the_states_the_code_has() -> None:
    params = {
        path: {p["name"]: p for p in DOCUMENT["paths"][path]["get"].get("parameters", [])}
        for path in ("/events", "/tasks")
    }
    events = DOCUMENT["components"]["schemas"]["EventState"]["enum"]
    tasks = DOCUMENT["components"]["schemas"]["TaskState"]["enum"]
    assert params["/events"]["state"]["schema"]["enum"] == events
    assert params["/tasks"]["state"]["schema"]["enum"] == tasks
    assert "superseded" in tasks and "skipped" in events


TASK_REQUEST = Draft202012Validator(
    {
        **DOCUMENT["paths"]["/task"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ],
        "components": DOCUMENT["components"],
    }
)


@given(BODIES)
def test_the_task_request_schema_takes_what_post_task_takes(body: dict[str, Any]) -> None:
    """What the handler accepts fits the schema; what fits it (with text in its text
    fields) the handler accepts."""
    try:  # NaN and lone surrogates are not JSON text: the handler refuses them, as it should
        json.dumps(body, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, UnicodeError):
        assume(False)
    try:
        parse_task_request(json.dumps(body).encode())
        accepted = True
    except Refused:
        accepted = False
    fits = TASK_REQUEST.is_valid(body)
    if accepted:
        assert fits, body
    texts = [body.get("prompt", ""), *([body["worker"]] if "worker" in body else [])]
    if fits and all(isinstance(t, str) and t.strip() for t in texts):
        assert accepted, body
