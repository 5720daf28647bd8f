"""Each pooled connection's set-up: Python values into PostgreSQL where psycopg's defaults
would differ from SQLite's, and how long a statement waits for a lock.

PostgreSQL text cannot hold the NUL character (SQLite's can), and psycopg refuses such a
string: one PR title with ``\\x00`` in it, rendered into a prompt, would fail the whole
batch it arrives in, and again each time the forge sends it again. Every string sent is
stored with U+FFFD (the replacement character) in its place instead. JSON that Mecha
writes escapes NUL (``\\u0000``) and is kept exactly.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

from mecha.store.postgres.parts import Conn

NUL = "\x00"
REPLACEMENT = "\ufffd"


def _clean(obj: str) -> str:
    return obj.replace(NUL, REPLACEMENT) if NUL in obj else obj


class _TextDumper(StrDumperUnknown):
    def dump(self, obj: Any) -> Any:
        return super().dump(_clean(obj))


class _BinaryDumper(StrBinaryDumper):
    def dump(self, obj: Any) -> Any:
        return super().dump(_clean(obj))


def configure(conn: Conn, *, lock_timeout: float) -> None:
    """Set up a new connection (the pool's ``configure``): this module's dumpers, the text
    one last, so ``%s`` keeps psycopg's default (text, of a type the server infers); and
    ``lock_timeout``, so a row another node holds fails a call instead of hanging it."""
    conn.adapters.register_dumper(str, _BinaryDumper)
    conn.adapters.register_dumper(str, _TextDumper)
    conn.execute(f"SET lock_timeout = {int(lock_timeout * 1000)}")  # an int: milliseconds
