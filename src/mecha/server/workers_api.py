"""``GET /workers``: every registered worker, its runtime state, and its definition masked.

A stored definition holds no secret value (keys are kept as the ``${VAR}`` written, or
withheld), but what it shows still goes through a mask: every ``api_key`` becomes
``***`` and every other text value (``docker.env`` above all) passes through the
redactor. ``token`` is kept as written: it names an entry of secrets.yml, it is not one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mecha.event import timestamp
from mecha.redaction import Redacts
from mecha.server.api import requires_key, store_call
from mecha.server.models import WorkerJson
from mecha.server.state import AppState
from mecha.store import WorkerRecord

MASK = "***"
#: keys whose value is replaced by MASK when it is not empty
MASKED_KEYS = frozenset({"api_key"})
#: keys whose value is a reference (a name), shown as written
REFERENCE_KEYS = frozenset({"token"})


@requires_key
async def list_workers(request: Request) -> Response:
    """Workers by name: kind, state, last error, endpoint, start time, masked definition."""
    state: AppState = request.app.state.mecha
    workers = await store_call(state, state.store.list_workers)
    if isinstance(workers, Response):
        return workers
    return JSONResponse([worker_json(w, state.redactor) for w in workers])


def worker_json(record: WorkerRecord, redactor: Redacts) -> WorkerJson:
    """One worker as `GET /workers` shows it."""
    return {
        "name": record.name,
        "kind": record.kind,
        "state": record.state,
        "error": redactor.redact(record.error),
        "endpoint": record.endpoint,
        "started_at": timestamp(record.started_at) if record.started_at else None,
        "container_id": record.container_id,
        "definition": masked(record.definition, redactor),
    }


def masked(value: Any, redactor: Redacts) -> Any:
    """``value`` with every api_key masked and every other text redacted (tokens kept)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in MASKED_KEYS and isinstance(item, str):
                out[key] = MASK if item else ""
            elif key in REFERENCE_KEYS and isinstance(item, str):
                out[key] = item
            else:
                out[key] = masked(item, redactor)
        return out
    if isinstance(value, list):
        return [masked(item, redactor) for item in value]
    if isinstance(value, str):
        return redactor.redact(value)
    return value
