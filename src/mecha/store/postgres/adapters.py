"""Python values into PostgreSQL where psycopg's defaults would differ from SQLite's.

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


def configure(conn: Conn) -> None:
    """Set this module's dumpers on a new connection (the pool's ``configure``); the text
    one last, so ``%s`` keeps psycopg's default (text, of a type the server infers)."""
    conn.adapters.register_dumper(str, _BinaryDumper)
    conn.adapters.register_dumper(str, _TextDumper)
