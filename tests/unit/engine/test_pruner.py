"""The background pruner's passes: batch after batch until nothing is due, then the log."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from mecha.config.retention import Retention
from mecha.engine.retention import Pruner, describe, size_text, space
from mecha.store.pruning import DiskUsage, PruneCounts

USAGE = DiskUsage(database=23_600_000, wal=0, free=12_000_000)


class FakeStore:
    """Hands out the batches it was given, records the calls."""

    def __init__(self, batches: list[PruneCounts]) -> None:
        self.batches = batches
        self.calls: list[tuple[dict[str, float], int, float | None]] = []
        self.reclaimed = 0
        self.closed = False

    def prune(
        self, before: Mapping[str, float], *, limit: int = 500, seconds: float | None = None
    ) -> PruneCounts:
        self.calls.append((dict(before), limit, seconds))
        return self.batches.pop(0) if self.batches else PruneCounts()

    def count_prunable(self, before: Mapping[str, float]) -> PruneCounts:
        return PruneCounts()

    def reclaim(self) -> DiskUsage:
        self.reclaimed += 1
        return USAGE

    def disk_usage(self) -> DiskUsage:
        return USAGE

    def close(self) -> None:
        self.closed = True


def test_a_pass_goes_until_a_batch_removes_nothing_then_reclaims() -> None:
    store = FakeStore([PruneCounts(timeline=500), PruneCounts(tasks=3, events=3)])
    pruner = Pruner(open_store=lambda: store, retention=Retention(tasks=None), pause=0,
                    clock=lambda: 1_000_000.0)  # fmt: skip

    async def run() -> PruneCounts:
        removed = await pruner.run_pass()
        await pruner.stop()
        return removed

    removed = asyncio.run(run())
    assert removed == PruneCounts(timeline=500, tasks=3, events=3)
    assert len(store.calls) == 3  # the last one found nothing
    before, limit, seconds = store.calls[0]
    assert set(before) == {"events", "timeline", "writes"}  # tasks are kept for ever
    assert before["events"] == 1_000_000.0 - 30 * 86_400
    assert (limit, seconds) == (500, 0.05)
    assert store.reclaimed == 1 and store.closed
    assert pruner.removed == removed and pruner.passes == 1


def test_a_pass_that_removes_nothing_leaves_the_log_alone() -> None:
    store = FakeStore([])
    pruner = Pruner(open_store=lambda: store, retention=Retention())
    assert asyncio.run(pruner.run_pass()) == PruneCounts()
    assert store.reclaimed == 0


def test_retention_off_starts_no_passes() -> None:
    opened: list[FakeStore] = []
    off = Retention(events=None, tasks=None, timeline=None, writes=None)

    def open_store() -> FakeStore:
        opened.append(FakeStore([]))
        return opened[-1]

    async def run() -> None:
        pruner = Pruner(open_store=open_store, retention=off)
        await pruner.start()
        await pruner.stop()

    asyncio.run(run())
    assert opened == []


def test_what_was_removed_and_the_sizes_read_well() -> None:
    assert describe(PruneCounts(events=1, timeline=12, writes=2)) == (
        "1 event, 12 timeline entries, 2 writes"
    )
    assert describe(PruneCounts()) == "nothing"
    assert space(USAGE) == (
        "database 23.6 MB (12.0 MB of it free for new rows), write-ahead log 0 B"
    )
    assert [size_text(n) for n in (999, 1_500, 2_000_000_000)] == ["999 B", "1.5 KB", "2.0 GB"]
