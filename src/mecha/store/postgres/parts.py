"""What PostgresStore's mixins take from the class they join, and the connection type.

``PostgresParts`` declares the two connection helpers PostgresStore provides: ``_write``
(a transaction, synced unless told not to) and ``_use`` (reads, each statement on its
own); each mixin subclasses it instead of restating them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg

#: a pooled connection; rows are tuples
Conn = psycopg.Connection[Any]


class PostgresParts:
    """The connection helpers PostgresStore provides to its mixins."""

    def _write(self, doing: str, *, synced: bool = True) -> contextlib.AbstractContextManager[Conn]:
        raise NotImplementedError

    def _use(self, doing: str) -> contextlib.AbstractContextManager[Conn]:
        raise NotImplementedError


#: rows one multi-row statement carries at most (PostgreSQL takes 65,535 parameters)
ROWS_PER_STATEMENT = 500


def insert_rows(
    conn: Conn, head: str, marks: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> list[tuple[Any, ...]]:
    """``head VALUES (marks), (marks), … tail`` for ``rows``, a few hundred a statement; what
    a ``RETURNING`` in ``tail`` answered. One statement instead of one per row: the server
    does far less, and rows go in, and take serial numbers, in the order given."""
    returned: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        values = ", ".join([f"({marks})"] * len(chunk))
        cursor = conn.execute(
            f"{head} VALUES {values} {tail}",  # constant SQL; the values are parameters
            [value for row in chunk for value in row],
        )
        if "RETURNING" in tail:
            returned.extend(tuple(row) for row in cursor.fetchall())
    return returned
