"""A registered worker as the store keeps it: ``WorkerRecord`` (no pydantic, no secret)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mecha.worker.kind import WorkerKind, WorkerState


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerRecord:
    """A registered worker as stored: its secret-free definition and its runtime state."""

    #: unique name, as in the worker file
    name: str
    #: managed / adapter / unmanaged
    kind: WorkerKind
    #: the validated definition as JSON-ready data; never holds a secret value
    definition: dict[str, Any] = field(default_factory=dict)
    #: absolute path of the file it was added from ("" if none)
    source: str = ""
    state: WorkerState = WorkerState.OFFLINE
    #: last error text (already redacted) when state is ERROR
    error: str = ""
    #: where the running worker answers (set by the runtime; "" when not running)
    endpoint: str = ""
    container_id: str = ""
    #: unix seconds; 0.0 when never started
    started_at: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
