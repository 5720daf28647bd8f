"""Registered workers in memory, as ``mecha.store.sqlite.store`` keeps them: a batch is
added whole or not at all, and every definition change moves the registry version on."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Sequence

from mecha.store import WorkerRecord
from mecha.store.common import (
    definition_text,
    worker_exists,
    worker_moved,
    worker_not_found,
    worker_not_removable,
)
from mecha.testing.memory.tables import Tables, WorkerRow
from mecha.worker.kind import WorkerKind, WorkerState


def row_of(record: WorkerRecord, now: float) -> WorkerRow:
    """The row for a new record; zero timestamps become ``now``; StoreError if its
    definition is not plain JSON."""
    definition = definition_text(record)
    kept = dataclasses.replace(
        record, kind=WorkerKind(record.kind), state=WorkerState(record.state), definition={},
        started_at=float(record.started_at), created_at=float(record.created_at or now),
        updated_at=float(record.updated_at or now),
    )  # fmt: skip
    return WorkerRow(record=kept, definition=definition)


def add_workers(tables: Tables, rows: Sequence[WorkerRow], *, replace: bool) -> None:
    """Register all of ``rows`` or none; with ``replace``, a taken name gets the new kind,
    definition and source (its state, endpoint, container and creation time stay)."""
    names = [row.record.name for row in rows]
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    taken = sorted(name for name in set(names) if name in tables.workers)
    if repeated or (taken and not replace):
        raise worker_exists([] if replace else taken, repeated)
    for row in rows:
        name = row.record.name
        known = tables.workers.get(name)
        if known is None:
            tables.workers[name] = row
        else:
            record = dataclasses.replace(
                known.record, kind=row.record.kind, source=row.record.source,
                updated_at=row.record.updated_at,
            )  # fmt: skip
            tables.workers[name] = WorkerRow(record=record, definition=row.definition)
        tables.registry += 1


def get_worker(tables: Tables, name: str) -> WorkerRecord:
    """The worker called ``name``; WorkerNotFound."""
    row = tables.workers.get(name)
    if row is None:
        raise worker_not_found(name)
    return row.worker()


def list_workers(tables: Tables) -> list[WorkerRecord]:
    """Every worker, by name."""
    return [tables.workers[name].worker() for name in sorted(tables.workers)]


def remove_worker(tables: Tables, name: str, allowed: Collection[WorkerState]) -> None:
    """Delete ``name`` if its state is one of ``allowed``."""
    row = tables.workers.get(name)
    if row is None:
        raise worker_not_found(name)
    state = row.record.state
    if state.value not in {str(s) for s in allowed}:
        raise worker_not_removable(name, state.value, allowed)
    del tables.workers[name]
    tables.registry += 1


def set_worker_state(
    tables: Tables,
    name: str,
    state: WorkerState,
    *,
    error: str,
    endpoint: str | None,
    container_id: str | None,
    only_from: Collection[WorkerState] | None,
    now: float,
) -> WorkerRecord:
    """Record a state change (and where it runs, if given); the new record."""
    row = tables.workers.get(name)
    if row is None:
        raise worker_not_found(name)
    old = row.worker()
    if only_from is not None and old.state not in only_from:
        raise worker_moved(name, old.state, state)
    starting = state == WorkerState.ONLINE and old.state == WorkerState.OFFLINE
    new = dataclasses.replace(
        old, state=WorkerState(state), error=error,
        endpoint=old.endpoint if endpoint is None else endpoint,
        container_id=old.container_id if container_id is None else container_id,
        started_at=now if starting else old.started_at, updated_at=now,
    )  # fmt: skip
    tables.workers[name] = WorkerRow(
        record=dataclasses.replace(new, definition={}), definition=row.definition
    )
    return new
