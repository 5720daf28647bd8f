"""The OpenAPI 3.1 document, made from the route table (``mecha.server.routes``) and the
TypedDicts its answers name: their JSON Schemas come from pydantic and go in
``components/schemas``, referenced by ``$ref``. Nothing here is written by hand but the
document's frame (info, the security schemes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import TypeAdapter

from mecha import __version__
from mecha.server.models import ErrorJson
from mecha.server.routes import Answer, ApiRoute, Auth, Body

REF = "#/components/schemas/{model}"
KEY_SCHEMES: tuple[dict[str, list[str]], ...] = ({"bearer": []}, {"apiKey": []})
#: what a route needing the key answers besides its own
KEY_REFUSALS = {
    401: Answer("the API key is missing or wrong", ErrorJson),
    403: Answer("the API is closed: serve listens beyond loopback without a key", ErrorJson),
}
INFO = {
    "title": "Mecha",
    "version": __version__,
    "summary": "Self-hosted, event-driven agentic workflow engine",
    "description": (
        "Forge events in, policy-gated results out. Routes marked with a lock need the "
        "server's API key when it has one: `Authorization: Bearer <key>` or "
        '`X-API-Key: <key>`. Every refusal is JSON `{"error": ..., "hint": ...}`; any '
        "route answers 431 to headers over 64 KB, 400 to a request that cannot be parsed, "
        "and 500 to a bug (its traceback goes to the server log). This document and /docs "
        "are open."
    ),
    "license": {"name": "ISC", "identifier": "ISC"},
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "the server's API key"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "the server's API key"},
}  # fmt: skip


def openapi_document(routes: Sequence[ApiRoute]) -> dict[str, Any]:
    """The document describing ``routes``."""
    models = _Models(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, models)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "paths": paths,
        "components": {"schemas": models.definitions, "securitySchemes": SECURITY_SCHEMES},
        "tags": [{"name": tag} for tag in dict.fromkeys(r.tag for r in routes if r.tag)],
    }


class _Models:
    """Every model the routes name, as schemas with their definitions shared."""

    def __init__(self, routes: Iterable[ApiRoute]) -> None:
        wanted = {id(m): m for r in routes for m in _models(r)}
        adapters = [(key, "serialization", TypeAdapter(m)) for key, m in wanted.items()]
        found, defs = TypeAdapter.json_schemas(adapters, ref_template=REF)  # type: ignore[arg-type]
        self.schemas = {key: _untitled(schema) for (key, _), schema in found.items()}
        self.definitions = {
            name: _untitled(schema) for name, schema in sorted(defs.get("$defs", {}).items())
        }

    def schema(self, model: Any) -> dict[str, Any]:
        found: dict[str, Any] = self.schemas[id(model)]
        return found


def _models(route: ApiRoute) -> list[Any]:
    answers = [*route.answers.values(), *(KEY_REFUSALS.values() if route.auth is Auth.KEY else ())]
    found = [answer.model for answer in answers if answer.model is not None]
    if route.body is not None and route.body.model is not None:
        found.append(route.body.model)
    return found


def _operation(route: ApiRoute, models: _Models) -> dict[str, Any]:
    answers = dict(route.answers)
    if route.auth is Auth.KEY:
        answers.update(KEY_REFUSALS)
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": route.description,
        "tags": [route.tag] if route.tag else [],
        "security": _security(route.auth),
        "responses": {
            str(status): _response(answers[status], models) for status in sorted(answers)
        },
    }
    if route.params:
        operation["parameters"] = [
            {"name": p.name, "in": p.where, "description": p.description,
             "required": p.required, "schema": dict(p.schema)}
            for p in route.params
        ]  # fmt: skip
    if route.body is not None:
        operation["requestBody"] = _body(route.body, models)
    return operation


def _security(auth: Auth) -> list[dict[str, list[str]]]:
    if auth is Auth.KEY:
        return list(KEY_SCHEMES)
    if auth is Auth.OPTIONAL:
        return [{}, *KEY_SCHEMES]
    return []


def _response(answer: Answer, models: _Models) -> dict[str, Any]:
    schema = models.schema(answer.model) if answer.model is not None else answer.schema
    shown: dict[str, Any] = {
        "description": answer.description,
        "content": {
            media: {"schema": dict(schema or {})} for media in (answer.media, *answer.also)
        },
    }
    if answer.headers:
        shown["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in answer.headers.items()
        }
    return shown


def _body(body: Body, models: _Models) -> dict[str, Any]:
    schema = models.schema(body.model) if body.model is not None else body.schema
    return {
        "description": body.description,
        "required": body.required,
        "content": {media: {"schema": dict(schema or {})} for media in body.media},
    }


def _untitled(schema: Any) -> Any:
    """``schema`` without the titles pydantic gives every property ("Delivery Id")."""
    if isinstance(schema, dict):
        return {
            key: _untitled(value)
            for key, value in schema.items()
            if not (key == "title" and isinstance(value, str))
        }
    if isinstance(schema, list):
        return [_untitled(item) for item in schema]
    return schema
