"""Registered workers in PostgreSQL: ``WorkersMixin`` gives PostgresStore its worker methods.

A check and the write it allows are one transaction with the row locked (``FOR UPDATE``),
so a node changing a worker never undoes another's change unseen. Adding refuses the whole
batch if a name is taken, also when another node takes it between the check and the
insert (``ON CONFLICT DO NOTHING`` tells).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import fields, replace
from typing import Any

from mecha.store import WorkerRecord
from mecha.store.common import (
    definition_text,
    worker_exists,
    worker_moved,
    worker_not_found,
    worker_not_removable,
    worker_unreadable,
)
from mecha.store.postgres.parts import PostgresParts
from mecha.worker.kind import WorkerKind, WorkerState

_FIELDS = tuple(field.name for field in fields(WorkerRecord))  # the workers columns, in order
# built from constant column names only, never from input
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM workers"  # noqa: S608
_INSERT = (
    f"INSERT INTO workers ({', '.join(_FIELDS)}) "  # noqa: S608
    f"VALUES (%({')s, %('.join(_FIELDS)})s)"
)
_ADD = _INSERT + " ON CONFLICT (name) DO NOTHING RETURNING name"
_REPLACE = (
    _INSERT + " ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
    "definition = excluded.definition, source = excluded.source, updated_at = excluded.updated_at"
)
_UPDATE_STATE = (
    "UPDATE workers SET state = %s, error = %s, endpoint = %s, container_id = %s, "
    "started_at = %s, updated_at = %s WHERE name = %s"
)


class WorkersMixin(PostgresParts):
    """PostgresStore's worker methods; the class provides ``_write`` and ``_use``."""

    def add_workers(self, records: Sequence[WorkerRecord], *, replace: bool = False) -> None:
        """Register all of ``records`` or none; WorkerExists names every taken name.

        With ``replace``, a taken name gets the new kind, definition and source instead;
        its state, endpoint and container are kept.
        """
        if not records:
            return
        now = time.time()
        rows = [_to_row(record, now) for record in records]
        names = [record.name for record in records]
        repeated = sorted(name for name, count in Counter(names).items() if count > 1)
        with self._write("adding workers") as conn:
            taken = sorted(
                row[0]
                for row in conn.execute(
                    "SELECT name FROM workers WHERE name = ANY(%s)", (sorted(set(names)),)
                )
            )
            if repeated or (taken and not replace):
                raise worker_exists([] if replace else taken, repeated)
            cursor = conn.cursor()
            cursor.executemany(_REPLACE if replace else _ADD, rows, returning=not replace)
            if not replace:
                added = set()
                for _ in rows:
                    if (row := cursor.fetchone()) is not None:
                        added.add(row[0])
                    cursor.nextset()
                if late := sorted(set(names) - added):  # another node took them meanwhile
                    raise worker_exists(late, [])

    def get_worker(self, name: str) -> WorkerRecord:
        """The worker called ``name``; WorkerNotFound if there is none."""
        with self._use(f'reading worker "{name}"') as conn:
            row = conn.execute(_SELECT + " WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise worker_not_found(name)
        return _from_row(row)

    def list_workers(self) -> list[WorkerRecord]:
        """Every registered worker, sorted by name."""
        with self._use("listing workers") as conn:
            rows = conn.execute(_SELECT + " ORDER BY name").fetchall()
        return [_from_row(row) for row in rows]

    def remove_worker(self, name: str, *, allowed_states: Collection[WorkerState]) -> None:
        """Delete ``name`` if its state is in ``allowed_states``, else WorkerStateError."""
        with self._write(f'removing worker "{name}"') as conn:
            row = conn.execute(
                "SELECT state FROM workers WHERE name = %s FOR UPDATE", (name,)
            ).fetchone()
            if row is None:
                raise worker_not_found(name)
            if row[0] not in {str(state) for state in allowed_states}:
                raise worker_not_removable(name, row[0], allowed_states)
            conn.execute("DELETE FROM workers WHERE name = %s", (name,))

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
        """Record a state change (and optionally where it runs); return the new record."""
        with self._write(f'setting the state of worker "{name}"') as conn:
            row = conn.execute(_SELECT + " WHERE name = %s FOR UPDATE", (name,)).fetchone()
            if row is None:
                raise worker_not_found(name)
            old = _from_row(row)
            if only_from is not None and old.state not in only_from:
                raise worker_moved(name, old.state, state)
            now = time.time()
            starting = state == WorkerState.ONLINE and old.state == WorkerState.OFFLINE
            new = replace(
                old,
                state=WorkerState(state),
                error=error,
                endpoint=old.endpoint if endpoint is None else endpoint,
                container_id=old.container_id if container_id is None else container_id,
                started_at=now if starting else old.started_at,
                updated_at=now,
            )
            changed = (new.state.value, new.error, new.endpoint, new.container_id,
                       new.started_at)  # fmt: skip
            conn.execute(_UPDATE_STATE, (*changed, now, name))
        return new

    def count_workers(self) -> int:
        """How many workers are registered."""
        with self._use("counting workers") as conn:
            row = conn.execute("SELECT count(*) FROM workers").fetchone()
            return int(row[0]) if row else 0


def _to_row(record: WorkerRecord, now: float) -> dict[str, Any]:
    """The INSERT parameters for ``record``; zero timestamps become ``now``."""
    row = {field: getattr(record, field) for field in _FIELDS}
    row["definition"] = definition_text(record)
    row["kind"], row["state"] = str(record.kind), str(record.state)
    row.update(created_at=record.created_at or now, updated_at=record.updated_at or now)
    return row


def _from_row(row: Sequence[Any]) -> WorkerRecord:
    """The WorkerRecord for a row selected with ``_SELECT``."""
    values = dict(zip(_FIELDS, row, strict=True))
    try:
        values["kind"] = WorkerKind(values["kind"])
        values["state"] = WorkerState(values["state"])
        values["definition"] = json.loads(values["definition"])
    except ValueError as exc:
        raise worker_unreadable(values["name"], exc) from exc
    return WorkerRecord(**values)
