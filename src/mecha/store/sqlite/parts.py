"""What SqliteStore's mixins (ledger, progress, pruning) take from the class they join.

``SqliteParts`` declares the two connection helpers SqliteStore provides: ``_write`` (a
transaction, synced unless told not to) and ``_use`` (a read); each mixin subclasses it
instead of restating them.
"""

from __future__ import annotations

import contextlib
import sqlite3


class SqliteParts:
    """The connection helpers SqliteStore provides to its mixins."""

    def _write(
        self, doing: str, *, synced: bool = True
    ) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _use(self, doing: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError
