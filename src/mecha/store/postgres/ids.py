"""Rows found by the whole id or a unique prefix (``mecha event show 3f2a9c``).

Ids compare byte by byte (``COLLATE "C"``), so a prefix is a range of the primary key:
``id >= prefix AND id < prefix || '\\x7f'``, as SQLite looks it up, which the key's
index answers whatever plan PostgreSQL keeps for the statement.
"""

from __future__ import annotations

from typing import Any

from mecha.store.common import by_prefix
from mecha.store.postgres.parts import Conn


def rows_by_id(conn: Conn, select: str, row_id: str) -> list[tuple[Any, ...]]:
    """Rows of ``select`` (a constant ``SELECT … FROM t``) whose id is ``row_id``, else whose
    id starts with it (at most two, so the caller can tell unique from ambiguous)."""
    rows = conn.execute(f"{select} WHERE id = %s", (row_id,)).fetchall()
    if not rows and by_prefix(row_id):
        rows = conn.execute(
            f"{select} WHERE id >= %s AND id < %s LIMIT 2",
            (row_id, row_id + "\x7f"),
        ).fetchall()
    return [tuple(row) for row in rows]
