"""Every Store the conformance suite runs on, and what its tests share.

To run the suite on another store, add it to ``STORES``: how to open one in a test's
folder (or, for PostgreSQL, on the test's own empty database: ``pg_url``), and how to count
the rows it holds (for the few tests that look at what is kept).
A test that checks what only one store has (a file's modes, compression on disk) takes
the ``store`` of that kind alone with ``@sqlite_only``.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from mecha.event import Delivery, Event, received
from mecha.store import Arrival, EventOutcome, Store, WorkerRecord
from mecha.store.postgres.store import PostgresStore, open_postgres
from mecha.store.pruning import PruneStore
from mecha.store.sqlite.store import SqliteStore, open_sqlite
from mecha.task import Task
from mecha.testing.memory_store import MemoryStore
from mecha.worker.kind import WorkerKind


class AnyStore(Store, PruneStore, Protocol):
    """What every store here is: a Store that prunes too."""


@dataclass(frozen=True)
class StoreKind:
    """One kind of store under test."""

    cls: type[Any]
    #: a new, empty store keeping its data in (or under) this folder, or (``server``) in
    #: the database at this URL
    open: Callable[[Path], AnyStore] | Callable[[str], AnyStore]
    #: how many rows of a table (SQLite's names) match an SQL condition
    rows: Callable[[Any, str, str], int]
    #: the store needs a database server: ``open`` takes the ``pg_url`` fixture's URL
    server: bool = False


def _sqlite_rows(store: SqliteStore, table: str, where: str) -> int:
    with sqlite3.connect(store.path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])  # noqa: S608


def _postgres_rows(store: PostgresStore, table: str, where: str) -> int:
    import psycopg

    where = "true" if where == "1" else where  # SQLite's "all rows"
    with psycopg.connect(store.server.conninfo) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}".encode()).fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def _memory_rows(store: MemoryStore, table: str, where: str) -> int:
    """The conditions the tests use: ``1``, ``column = 'value'``, ``column IN ('a', …)``."""
    found = store.rows(table)
    if where == "1":
        return len(found)
    if equal := re.fullmatch(r"(\w+) = '([^']*)'", where):
        return sum(1 for row in found if row[equal[1]] == equal[2])
    if among := re.fullmatch(r"(\w+) IN \(([^)]*)\)", where):
        values = set(re.findall(r"'([^']*)'", among[2]))
        return sum(1 for row in found if row[among[1]] in values)
    raise ValueError(f"MemoryStore rows: no reading of {where!r} yet; add it here")


STORES: dict[str, StoreKind] = {
    "memory": StoreKind(MemoryStore, lambda folder: MemoryStore(), _memory_rows),
    "sqlite": StoreKind(SqliteStore, lambda folder: open_sqlite(folder / "mecha.db"), _sqlite_rows),
    "postgres": StoreKind(PostgresStore, open_postgres, _postgres_rows, server=True),
}

#: the test runs on SQLite only: it checks what only SQLite has
sqlite_only = pytest.mark.parametrize("store", ["sqlite"], indirect=True)


def rows(store: AnyStore, table: str, where: str = "1") -> int:
    """How many rows of ``table`` the store holds that match ``where`` (SQL)."""
    [kind] = [kind for kind in STORES.values() if isinstance(store, kind.cls)]
    return kind.rows(store, table, where)


def delivery(
    delivery_id: str = "d-1", *, raw: bytes = b'{"a": 1}', source: str = "github"
) -> Delivery:
    return Delivery(
        source=source, type="pull_request.opened", delivery_id=delivery_id, actor="mona",
        subject="octo/app", attrs={"number": 7, "draft": False, "title": "T"}, raw=raw,
        headers={"x-github-event": "pull_request"},
    )  # fmt: skip


def worker(name: str, **fields: Any) -> WorkerRecord:
    fields.setdefault("definition", {"name": name, "endpoint": f"http://127.0.0.1:9000/{name}"})
    return WorkerRecord(name=name, kind=WorkerKind.UNMANAGED, **fields)


def names(store: Store) -> list[str]:
    return [record.name for record in store.list_workers()]


def arrive(
    store: Store,
    deliveries: Sequence[Delivery],
    decide: Callable[[Event], EventOutcome | None],
    tasks_made: list[Task] | None = None,
) -> list[Event | None]:
    """Store ``deliveries`` as the engine does: each made an event (arrived now), decided,
    and stored with its outcome in one ``insert_arrivals``. The stored events, in their
    outcome's state (None for a duplicate); the tasks made are added to ``tasks_made``."""
    now = time.time()
    arrivals = [Arrival(event=event, outcome=decide(event))
                for event in (received(d, now=now) for d in deliveries)]  # fmt: skip
    stored: list[Event | None] = []
    for arrival, made in zip(arrivals, store.insert_arrivals(arrivals), strict=True):
        if made is None:
            stored.append(None)
            continue
        if tasks_made is not None:
            tasks_made.extend(made)
        outcome = arrival.outcome
        event = arrival.event
        stored.append(event if outcome is None else replace(event, state=outcome.state,
                                                            error=outcome.error))  # fmt: skip
    return stored
