"""The Store Protocol: every durable read and write Mecha makes goes through it.

Callers (CLI, engine, server) depend on this Protocol only; ``open_sqlite`` in
``mecha.store.sqlite`` (today) or a PostgreSQL module (later) builds a concrete one.
The Protocol is synchronous on purpose: both sqlite3 and psycopg offer a blocking
API, and async callers run store calls on a worker thread (``asyncio.to_thread``) or
hand them to a dedicated writer thread that groups commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mecha.worker_kind import WorkerKind, WorkerState


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


class Store(Protocol):
    """Durable state. Every method commits before it returns."""

    def schema_version(self) -> int:
        """The migration version the database is at."""
        ...

    def add_workers(self, records: Sequence[WorkerRecord], *, replace: bool = False) -> None:
        """Register all of ``records`` or none; WorkerExists names every taken name.

        With ``replace``, taken names get the new definition; runtime state is kept.
        """
        ...

    def get_worker(self, name: str) -> WorkerRecord:
        """The worker called ``name``; WorkerNotFound if there is none."""
        ...

    def list_workers(self) -> list[WorkerRecord]:
        """Every registered worker, sorted by name."""
        ...

    def remove_worker(self, name: str, *, allowed_states: Collection[WorkerState]) -> None:
        """Delete ``name`` if its state is in ``allowed_states``, else WorkerStateError."""
        ...

    def set_worker_state(
        self,
        name: str,
        state: WorkerState,
        *,
        error: str = "",
        endpoint: str | None = None,
        container_id: str | None = None,
        only_from: Collection[WorkerState] | None = None,
    ) -> WorkerRecord:
        """Record a state change (and optionally where it runs); return the new record.

        With ``only_from``, change only if the current state is one of those (checked and
        written in one transaction), else WorkerStateError.
        """
        ...

    def count_workers(self) -> int:
        """How many workers are registered."""
        ...

    def close(self) -> None:
        """Release the connection; the store is unusable afterwards."""
        ...
