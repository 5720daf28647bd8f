"""Row ids: made here, and found by the whole id or a unique prefix (``mecha event show
3f2a9c``)."""

from __future__ import annotations

import sqlite3
from typing import Any

from mecha.store.common import MIN_PREFIX, by_prefix, new_id

__all__ = ["MIN_PREFIX", "new_id", "rows_by_id"]


def rows_by_id(conn: sqlite3.Connection, select: str, row_id: str) -> list[tuple[Any, ...]]:
    """Rows of ``select`` (a constant ``SELECT … FROM t``) whose id is ``row_id``, else whose
    id starts with it (at most two, so the caller can tell unique from ambiguous)."""
    rows = conn.execute(f"{select} WHERE id = ?", (row_id,)).fetchall()
    if not rows and by_prefix(row_id):
        rows = conn.execute(
            f"{select} WHERE id >= ? AND id < ? LIMIT 2", (row_id, row_id + "\x7f")
        ).fetchall()
    return [tuple(row) for row in rows]
