"""What PostgresStore's mixins take from the class they join, and the connection type.

``PostgresParts`` declares the two connection helpers PostgresStore provides: ``_write``
(a transaction, synced unless told not to) and ``_use`` (reads, each statement on its
own); each mixin subclasses it instead of restating them.
"""

from __future__ import annotations

import contextlib
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
