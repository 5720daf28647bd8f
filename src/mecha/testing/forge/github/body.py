"""How the GitHub emulator reads request bodies and writes people, as GitHub does.

``body_json`` parses a body (400 "Problems parsing JSON"); ``check_fields`` lists what is
missing or of the wrong JSON type in GitHub's ``errors`` shape, which ``invalid`` and
``custom`` answer as 422 "Validation Failed"; ``user_json`` is the nested ``user``
object; ``now_text`` GitHub's timestamp.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from mecha.testing.forge.github.emulator import github_error
from mecha.testing.forge.wire import Call, Reply, fake_sha

_TYPES: dict[str, type] = {"string": str, "array": list, "object": dict, "boolean": bool}


def now_text() -> str:
    """The time as GitHub writes it: ``2026-01-01T10:00:00Z``."""
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_json(login: str) -> dict[str, Any]:
    """A ``user`` object as GitHub nests it in comments, reviews and statuses."""
    number = int(fake_sha(f"user:{login}")[:7], 16)
    return {
        "login": login,
        "id": number,
        "node_id": f"U_{number}",
        "type": "Bot" if login.endswith("[bot]") else "User",
        "site_admin": False,
    }


def body_json(call: Call) -> tuple[Any, Reply | None]:
    """The request body as JSON (``{}`` when empty), or GitHub's 400."""
    if not call.body.strip():
        return {}, None
    try:
        return json.loads(call.body), None
    except ValueError:
        return None, github_error(400, "Problems parsing JSON")


def check_fields(
    data: Any, resource: str, required: dict[str, str], optional: dict[str, str]
) -> list[dict[str, str]]:
    """GitHub's ``errors`` for missing fields and fields of the wrong JSON type.

    Kinds are JSON's: string, integer, array, object, boolean. A null counts as missing.
    """
    if not isinstance(data, dict):
        return [{"resource": resource, "code": "invalid", "message": "the body is not an object"}]
    errors: list[dict[str, str]] = []
    for name, kind in {**required, **optional}.items():
        value = data.get(name)
        if value is None:
            if name in required:
                errors.append({"resource": resource, "field": name, "code": "missing_field"})
        elif not is_kind(value, kind):
            message = f"{name} is not a {kind}"
            error = {"resource": resource, "field": name, "code": "invalid", "message": message}
            errors.append(error)
    return errors


def is_kind(value: Any, kind: str) -> bool:
    """Whether ``value`` is of the JSON type ``kind`` (a bool is no integer)."""
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def invalid(errors: list[Any]) -> Reply:
    """422 "Validation Failed" with ``errors``."""
    return github_error(422, "Validation Failed", errors=errors)


def custom(resource: str, name: str, message: str) -> Reply:
    """422 "Validation Failed" with one ``custom`` error."""
    return invalid([{"resource": resource, "field": name, "code": "custom", "message": message}])
