"""Pruning in memory, with the conditions of ``mecha.store.sqlite.prune``: writes, then
timeline entries, then tasks, then events (their decisions with them), at most ``limit``
rows a call, and never what is still in use (see ``mecha.store.pruning.PruneStore``).

Nothing here takes time, so ``seconds`` ends nothing early; a MemoryStore takes no room
on disk (``DiskUsage`` is all zeros).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from mecha.event import EventState
from mecha.policy.writes import FINAL_WRITE_STATES, WriteState
from mecha.store.pruning import PRUNED_KINDS, PruneCounts
from mecha.task import FINAL_STATES, TaskState
from mecha.testing.memory.tables import EventRow, Tables, TaskRow, TimelineRow, WriteRow

_OPEN_TASKS = frozenset({TaskState.PENDING, TaskState.RUNNING})
_FINAL_EVENTS = frozenset({EventState.COMPLETED, EventState.FAILED, EventState.SKIPPED})
_OPEN_WRITES = frozenset({WriteState.PLANNED, WriteState.CALLING})
_NO_BOUND = 2**62


class _Rules:
    """Which rows of each kind may go, for one set of cut times (``before``)."""

    def __init__(self, tables: Tables, before: Mapping[str, float]) -> None:
        self.tables = tables
        self.before = before
        self.cut = {kind: float(before.get(kind, 0.0)) for kind in PRUNED_KINDS}
        # the first row made at or after the cut bounds the rows looked at, as in SQLite
        self.bound = {
            "writes": _first(r.seq for r in tables.writes.values()
                             if r.created_at >= self.cut["writes"]),
            "timeline": _first(r.id for r in tables.timeline
                               if r.entry.at >= self.cut["timeline"]),
        }  # fmt: skip
        opened = [w for w in tables.writes.values() if w.state in _OPEN_WRITES]
        self.open_writes = {(w.event_id, w.task_id) for w in opened}
        self.open_write_events = {w.event_id for w in opened}
        self._tasks_of: dict[str, list[TaskRow]] | None = None

    def tasks_of(self, event_id: str) -> list[TaskRow]:
        """The tasks of an event (as they are once the first event is looked at: after
        the tasks that go are gone)."""
        if self._tasks_of is None:
            self._tasks_of = defaultdict(list)
            for task in self.tables.tasks.values():
                self._tasks_of[task.event_id].append(task)
        return self._tasks_of.get(event_id, [])

    def _unfinished_task(self, task_id: str) -> bool:
        task = self.tables.tasks.get(task_id)
        return task is not None and task.state in _OPEN_TASKS

    def write(self, row: WriteRow) -> bool:
        return (
            row.seq < self.bound["writes"] and row.state in FINAL_WRITE_STATES
            and row.updated_at < self.cut["writes"] and not self._unfinished_task(row.task_id)
        )  # fmt: skip

    def entry(self, row: TimelineRow) -> bool:
        event = self.tables.events.get(row.entry.event_id)
        return (
            row.id < self.bound["timeline"] and row.entry.at < self.cut["timeline"]
            and not self._unfinished_task(row.entry.task_id)
            and (event is None or event.state in _FINAL_EVENTS)
        )  # fmt: skip

    def task(self, row: TaskRow) -> bool:
        return (
            row.state in FINAL_STATES and row.created_at < self.cut["tasks"]
            and row.updated_at < self.cut["tasks"]
            and (row.event_id, row.id) not in self.open_writes
        )  # fmt: skip

    def event(self, row: EventRow) -> bool:
        """An event goes once none of its tasks is kept (any task, if tasks are kept)."""
        if row.state not in _FINAL_EVENTS or row.created_at >= self.cut["events"]:
            return False
        if row.id in self.open_write_events:
            return False
        tasks = self.tasks_of(row.id)
        return all(self.task(t) for t in tasks) if "tasks" in self.before else not tasks


def _first(numbers: Iterable[int]) -> int:
    return min(numbers, default=_NO_BOUND)


def prune(tables: Tables, before: Mapping[str, float], limit: int) -> PruneCounts:
    """Remove at most ``limit`` prunable rows, in ``PRUNED_KINDS`` order."""
    rules = _Rules(tables, before)
    removed: dict[str, int] = {}
    left = limit
    for kind in PRUNED_KINDS:
        if kind not in before or left <= 0:
            continue
        gone = _remove(tables, kind, rules, left)
        left -= gone
        if gone:
            removed[kind] = gone
    return PruneCounts(**removed)


def _remove(tables: Tables, kind: str, rules: _Rules, limit: int) -> int:
    if kind == "timeline":
        gone = [r.id for r in tables.timeline if rules.entry(r)][:limit]
        dropped = set(gone)
        tables.timeline[:] = [r for r in tables.timeline if r.id not in dropped]
        return len(gone)
    if kind == "writes":
        keys = [r.key for r in sorted(tables.writes.values(), key=_seq) if rules.write(r)]
        for key in keys[:limit]:
            del tables.writes[key]
        return len(keys[:limit])
    if kind == "tasks":
        ids = [r.id for r in tables.tasks.values() if rules.task(r)][:limit]
        for task_id in ids:
            del tables.dedup[tables.tasks.pop(task_id).dedup_key]
        return len(ids)
    ids = [r.id for r in tables.events.values() if rules.event(r)][:limit]
    for event_id in ids:
        event = tables.events.pop(event_id)
        del tables.deliveries[(event.source, event.delivery_id)]
    if ids:  # their decisions go with them
        events = set(ids)
        for match in [m for m in tables.matches if m[0] in events]:
            del tables.matches[match]
    return len(ids)


def _seq(row: WriteRow) -> int:
    return row.seq


def count_prunable(tables: Tables, before: Mapping[str, float]) -> PruneCounts:
    """How many rows of each kind ``prune`` would remove now."""
    rules = _Rules(tables, before)
    found: dict[str, int] = {}
    if "writes" in before:
        found["writes"] = sum(1 for r in tables.writes.values() if rules.write(r))
    if "timeline" in before:
        found["timeline"] = sum(1 for r in tables.timeline if rules.entry(r))
    if "tasks" in before:
        found["tasks"] = sum(1 for r in tables.tasks.values() if rules.task(r))
    if "events" in before:
        found["events"] = sum(1 for r in tables.events.values() if rules.event(r))
    return PruneCounts(**found)
