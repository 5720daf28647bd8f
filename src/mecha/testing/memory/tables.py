"""The tables of a MemoryStore: one frozen row per record, kept as SQLite keeps its columns.

Attributes, headers, contexts, results, definitions and write specs are kept as JSON text,
as in SQLite: a read builds fresh objects (a caller may change them without changing the
store), and a value JSON cannot carry fails on the way in, as it does there. Timestamps
are floats (REAL) and a timeline step plain text. ``seq`` numbers every row in the order
it was made, which is the order SQLite's rowids give ties.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mecha.event import Event, EventState
from mecha.policy.writes import WriteState, write_from_json
from mecha.store import WorkerRecord, WriteRecord
from mecha.store.common import by_prefix
from mecha.task import Task, TaskState
from mecha.timeline import TimelineEntry

Row = TypeVar("Row")


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRow:
    """A row of ``events`` (the raw body is kept as received: nothing is compressed)."""

    seq: int
    id: str
    source: str
    delivery_id: str
    type: str
    actor: str
    subject: str
    attrs: str
    headers: str
    raw: bytes
    state: EventState
    error: str
    created_at: float
    updated_at: float
    #: the ``number`` and ``head_sha`` attributes, as columns (``common.pull_columns``)
    number: int = 0
    head_sha: str = ""
    #: the ``title`` attribute if it is text ("" if not), and what a search reads
    #: (``pages_sql.shown_columns``), as columns
    title: str = ""
    search_text: str = ""

    def event(self, *, raw: bool = False) -> Event:
        """The Event; with its raw body only if asked (lists leave it out)."""
        return Event(
            id=self.id, source=self.source, delivery_id=self.delivery_id, type=self.type,
            actor=self.actor, subject=self.subject, attrs=json.loads(self.attrs),
            headers=json.loads(self.headers), state=self.state, error=self.error,
            raw=self.raw if raw else b"", created_at=self.created_at,
            updated_at=self.updated_at,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchRow:
    """A row of ``event_matches``: one worker's decision about one event."""

    event_id: str
    worker: str
    outcome: str
    rule: int
    reason: str
    task_id: str
    created_at: float
    #: the event's created_at (a worker's events are paged by it)
    event_at: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskRow:
    """A row of ``tasks``."""

    seq: int
    id: str
    worker: str
    event_id: str
    dedup_key: str
    prompt: str
    context: str
    state: TaskState
    error: str = ""
    attempts: int = 0
    created_at: float
    updated_at: float
    #: JSON, or "" before the worker answered
    result: str = ""
    next_retry_at: float = 0.0
    dispatched_at: float = 0.0
    finished_at: float = 0.0
    timeout: float = 0.0
    tokens: int = 0
    #: the node that claimed it last ("" = none) and when that claim's lease ends
    node_id: str = ""
    lease_until: float = 0.0
    flow_key: str = ""
    flow_at: float = 0.0
    superseded_by: str = ""

    def task(self) -> Task:
        """The Task."""
        return Task(
            id=self.id, worker=self.worker, event_id=self.event_id, dedup_key=self.dedup_key,
            prompt=self.prompt, context=json.loads(self.context), state=self.state,
            error=self.error, attempts=self.attempts,
            result=json.loads(self.result) if self.result else {},
            next_retry_at=self.next_retry_at, created_at=self.created_at,
            updated_at=self.updated_at, dispatched_at=self.dispatched_at,
            finished_at=self.finished_at, timeout=self.timeout, tokens=self.tokens,
            flow_key=self.flow_key, flow_at=self.flow_at, superseded_by=self.superseded_by,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeRow:
    """A row of ``nodes``: one `mecha serve`."""

    id: str
    host: str
    pid: int
    version: str
    started_at: float
    heartbeat_at: float
    stopped_at: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class TimelineRow:
    """A row of ``timeline``: its number and the entry."""

    id: int
    entry: TimelineEntry


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteRow:
    """A row of ``writes``, the ledger."""

    seq: int
    key: str
    task_id: str
    event_id: str
    worker: str
    action: str
    target: str
    spec: str
    state: WriteState
    attempts: int = 0
    next_at: float = 0.0
    detail: str = ""
    remote_id: str = ""
    created_at: float
    updated_at: float
    node_id: str = ""
    lease_until: float = 0.0

    def record(self) -> WriteRecord:
        """The WriteRecord."""
        return WriteRecord(
            write=write_from_json(json.loads(self.spec)), task_id=self.task_id,
            event_id=self.event_id, state=self.state, attempts=self.attempts,
            next_at=self.next_at, detail=self.detail, remote_id=self.remote_id,
            created_at=self.created_at, updated_at=self.updated_at, node=self.node_id,
            lease_until=self.lease_until,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerRow:
    """A row of ``workers``: the record (its definition left empty) and the definition."""

    record: WorkerRecord
    definition: str

    def worker(self) -> WorkerRecord:
        """The WorkerRecord, its definition read back."""
        return dataclasses.replace(self.record, definition=json.loads(self.definition))


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerRow:
    """A row of ``budget_ledger``: one reserved attempt."""

    id: str
    task_id: str
    attempt: int
    worker: str
    at: float
    reserved: int
    used: int = 0
    #: open or settled
    state: str = "open"


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitRow:
    """A row of ``budget_waits``: a task refused by a budget, since when."""

    task_id: str
    worker: str
    scope: str
    kind: str
    since: float


@dataclass(kw_only=True, slots=True)
class Tables:
    """Everything a MemoryStore holds. A transaction changes a ``copy()`` (the rows are
    frozen: copying the containers is enough) and the store keeps it once it succeeded."""

    workers: dict[str, WorkerRow] = field(default_factory=dict)
    #: ``registry_version``: one up for every worker row added, replaced or removed
    registry: int = 0
    events: dict[str, EventRow] = field(default_factory=dict)
    #: (source, delivery id) → event id: the dedupe index
    deliveries: dict[tuple[str, str], str] = field(default_factory=dict)
    #: (event id, worker) → decision
    matches: dict[tuple[str, str], MatchRow] = field(default_factory=dict)
    tasks: dict[str, TaskRow] = field(default_factory=dict)
    #: dedup key → task id
    dedup: dict[str, str] = field(default_factory=dict)
    timeline: list[TimelineRow] = field(default_factory=list)
    #: key → write, in planning order
    writes: dict[str, WriteRow] = field(default_factory=dict)
    nodes: dict[str, NodeRow] = field(default_factory=dict)
    #: worker → (tokens, at) of its shared bucket
    paces: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: ticket → reservation, in the order made
    budget_ledger: dict[str, LedgerRow] = field(default_factory=dict)
    #: task id → its wait on a budget
    budget_waits: dict[str, WaitRow] = field(default_factory=dict)
    #: the last row number given
    seq: int = 0

    def copy(self) -> Tables:
        """A copy whose changes leave this one as it is."""
        return Tables(
            workers=dict(self.workers), registry=self.registry, events=dict(self.events),
            deliveries=dict(self.deliveries), matches=dict(self.matches),
            tasks=dict(self.tasks), dedup=dict(self.dedup), timeline=list(self.timeline),
            writes=dict(self.writes), nodes=dict(self.nodes), paces=dict(self.paces),
            budget_ledger=dict(self.budget_ledger), budget_waits=dict(self.budget_waits),
            seq=self.seq,
        )  # fmt: skip

    def next_seq(self) -> int:
        """A new row number, above every one given before."""
        self.seq += 1
        return self.seq

    def add_timeline(self, entries: list[TimelineEntry]) -> None:
        """Append entries, numbered in order; the step kept as plain text."""
        for entry in entries:
            kept = dataclasses.replace(entry, step=str(entry.step), at=float(entry.at))
            self.timeline.append(TimelineRow(id=self.next_seq(), entry=kept))

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The rows of one of SQLite's table names, as column → value (for tests)."""
        if table == "timeline":
            return [{"id": r.id, **dataclasses.asdict(r.entry)} for r in self.timeline]
        if table == "workers":
            return [{**dataclasses.asdict(r.record), "definition": r.definition}
                    for r in self.workers.values()]  # fmt: skip
        found: dict[str, Mapping[Any, Any]] = {
            "events": self.events, "event_matches": self.matches, "tasks": self.tasks,
            "writes": self.writes, "nodes": self.nodes, "budget_ledger": self.budget_ledger,
            "budget_waits": self.budget_waits,
        }  # fmt: skip
        if table not in found:
            raise KeyError(f"no table {table!r}; there are {sorted([*found, 'timeline'])}")
        return [dataclasses.asdict(row) for row in found[table].values()]


def by_id(rows: Mapping[str, Row], row_id: str) -> list[Row]:
    """The row with this id, else those whose id starts with it (at most two, so the
    caller can tell unique from ambiguous), as SQLite's ``rows_by_id``."""
    if row_id in rows:
        return [rows[row_id]]
    if not by_prefix(row_id):
        return []
    return [row for key, row in rows.items() if key.startswith(row_id)][:2]


def limited(rows: list[Row], limit: int) -> list[Row]:
    """The first ``limit`` rows; all of them for a negative limit (SQL's ``LIMIT -1``)."""
    return rows if limit < 0 else rows[:limit]
