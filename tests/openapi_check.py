"""Checking answers against the OpenAPI document: ``check_answer(document, method, path,
response)`` fails unless the document lists the answer's status for that route and the
body matches the schema it gives for it (objects closed: a key the document does not name
fails too, but where a schema says what else it takes)."""

from __future__ import annotations

from typing import Any

import httpx
from jsonschema import Draft202012Validator

#: shapes that carry more keys than they name (the dispatcher's figures in /health)
OPEN_SHAPES = frozenset({"HealthJson"})


def closed(document: dict[str, Any]) -> dict[str, Any]:
    """``document``'s components with ``additionalProperties: false`` on every object schema
    that lists properties and says nothing about others (but OPEN_SHAPES)."""
    schemas = {
        name: schema if name in OPEN_SHAPES else _closed(schema)
        for name, schema in document["components"]["schemas"].items()
    }
    return {**document["components"], "schemas": schemas}


def _closed(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


def answer_schema(document: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    """The document's ``content`` for ``status`` of ``method path``; fails if not listed."""
    operation = document["paths"][path][method.lower()]
    listed = operation["responses"]
    assert str(status) in listed, f"{method} {path} answered {status}; listed: {sorted(listed)}"
    content: dict[str, Any] = listed[str(status)]["content"]
    return content


def check_answer(document: dict[str, Any], method: str, path: str, answer: httpx.Response) -> None:
    """``answer`` (to ``method path``, a template such as /task/{task_id}) is as documented."""
    content = answer_schema(document, method, path, answer.status_code)
    media = answer.headers.get("content-type", "").split(";")[0].strip()
    assert media in content, f"{method} {path} {answer.status_code}: {media} not in {list(content)}"
    body: Any = answer.json() if media == "application/json" else answer.text
    schema = {**content[media]["schema"], "components": closed(document)}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert not errors, (
        f"{method} {path} {answer.status_code} does not match the document: "
        + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    )
