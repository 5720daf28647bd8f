"""Removing finished work after its retention: ``PruneStore`` and what it reports.

Apart from the ``Store`` Protocol on purpose (see ``PruneStore``); ``SqliteStore``
implements both (``mecha.store.sqlite.prune``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

#: what pruning removes, in the order a batch removes it
PRUNED_KINDS = ("writes", "timeline", "tasks", "events")


@dataclass(frozen=True, kw_only=True, slots=True)
class PruneCounts:
    """Rows removed (or, for a dry run, that would be) of each kind."""

    events: int = 0
    tasks: int = 0
    timeline: int = 0
    writes: int = 0

    @property
    def total(self) -> int:
        """All rows together."""
        return self.events + self.tasks + self.timeline + self.writes

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(
            events=self.events + other.events, tasks=self.tasks + other.tasks,
            timeline=self.timeline + other.timeline, writes=self.writes + other.writes,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class DiskUsage:
    """How much room the database takes, in bytes."""

    #: the database file
    database: int
    #: its write-ahead log (0 where there is none)
    wal: int
    #: space in the database file that is free and reused by new rows before it grows
    free: int


class PruneStore(Protocol):
    """Removing finished work after its retention (``mecha.config.retention``).

    Apart from ``Store`` on purpose: pruning writes nothing from outside, so it needs no
    wrapper that cleans what is stored, and it runs on its own connection (a running
    serve's background pruner, `mecha prune`) in short transactions.

    What is still in use is never removed, whatever its age: a task that is not finished
    (pending, waiting for a retry, running) or that has a write still open; a write that is
    open (planned, being tried) or whose task is not finished; an event that is not
    finished (received, matched, dispatched), that has a task that is kept or an open
    write. The timeline entries of an unfinished task or event are kept too.
    """

    def prune(
        self, before: Mapping[str, float], *, limit: int = 500, seconds: float | None = None
    ) -> PruneCounts:
        """Remove at most ``limit`` rows in one short transaction; how many of each kind.

        ``before`` gives, per kind (``PRUNED_KINDS``), the unix time before which a finished
        row may go; a kind left out is kept for ever. With ``seconds``, the transaction ends
        once that much time has passed, whatever was removed by then. Nothing removed means
        nothing more is due now. Not synced to disk: a power cut may only bring rows back.
        """
        ...

    def count_prunable(self, before: Mapping[str, float]) -> PruneCounts:
        """How many rows ``prune`` would remove with these times (a dry run; reads only)."""
        ...

    def reclaim(self) -> DiskUsage:
        """After pruning: give the write-ahead log's room back; the sizes after that."""
        ...

    def disk_usage(self) -> DiskUsage:
        """The room the database takes now."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
