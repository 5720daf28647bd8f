"""A Store that redacts every text from outside before the store underneath keeps it.

``RedactingStore(store, known)`` is what the composition root hands everyone. What a
worker, a model API or a forge said reaches the database only through these fields, each
passed through the ``KnownSecrets`` redactor (every secret value Mecha holds, and token
shapes) on the way in:

- a worker's error (``add_workers``, ``set_worker_state``);
- a task's error, result (every string in it) and timeline detail (``update_tasks``),
  and the write plan recorded with it;
- what matching recorded: an event's error and each worker's reason (the outcomes of
  ``insert_arrivals``, ``record_outcomes``);
- timeline details (``add_timeline``);
- planned writes (body, description, diff, details, notes) and a write's detail, which
  holds what the forge answered (``plan_writes``, ``update_writes``).

Reads pass through untouched: what is stored is clean already. Event payloads are stored
as received (their signature covers the raw bytes); the prompts made from them go only to
the workers the user configured.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from mecha.budget import BudgetUse, Reservation, Settlement, Verdict
from mecha.event import Delivery, Event, EventState
from mecha.known_secrets import KnownSecrets
from mecha.policy.writes import Write
from mecha.store import (
    Arrival,
    EventOutcome,
    EventQuery,
    EventRow,
    MatchRecord,
    NodeRecord,
    Store,
    TaskUpdate,
    WorkerFigures,
    WorkerRecord,
    WritePlan,
    WriteRecord,
    WriteUpdate,
)
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import TimelineEntry
from mecha.worker.kind import WorkerState
from mecha.worker.matching import Decision


class RedactingStore:
    """Delegates to ``inner``; every outside text in what it writes is redacted first."""

    def __init__(self, inner: Store, known: KnownSecrets) -> None:
        self.inner = inner
        self.known = known

    def __repr__(self) -> str:
        return f"RedactingStore({self.inner!r})"

    # --- the texts --------------------------------------------------------------------

    def _text(self, text: str) -> str:
        return self.known.redact(text) if text else text

    def _entry(self, entry: TimelineEntry) -> TimelineEntry:
        return replace(entry, detail=self._text(entry.detail)) if entry.detail else entry

    def _outcome(self, outcome: EventOutcome) -> EventOutcome:
        decisions = [self._decision(d) for d in outcome.decisions]
        return replace(outcome, error=self._text(outcome.error), decisions=decisions)

    def _decision(self, decision: Decision) -> Decision:
        return (
            replace(decision, reason=self._text(decision.reason)) if decision.reason else decision
        )

    def _write(self, write: Write) -> Write:
        return replace(
            write, body=self._text(write.body), description=self._text(write.description),
            diff=self._text(write.diff),
        )  # fmt: skip

    def _plan(self, plan: WritePlan) -> WritePlan:
        return replace(
            plan, writes=[self._write(w) for w in plan.writes],
            details={key: self._text(text) for key, text in plan.details.items()},
            notes=[self._entry(note) for note in plan.notes],
        )  # fmt: skip

    def _task_update(self, update: TaskUpdate) -> TaskUpdate:
        result: dict[str, Any] | None = update.result
        if result is not None:
            result = self.known.redact_data(result)
        return replace(
            update,
            error=None if update.error is None else self._text(update.error),
            result=result, detail=self._text(update.detail),
            plan=None if update.plan is None else self._plan(update.plan),
        )  # fmt: skip

    # --- writes that carry outside text -------------------------------------------------

    def add_workers(self, records: Sequence[WorkerRecord], *, replace: bool = False) -> None:
        """See Store.add_workers; each record's error redacted."""
        clean = [_with_error(r, self._text(r.error)) for r in records]
        self.inner.add_workers(clean, replace=replace)

    def set_worker_state(
        self,
        name: str,
        state: WorkerState,
        *,
        error: str = "",
        endpoint: str | None = None,
        container_id: str | None = None,
        only_from: Collection[WorkerState] | None = None,
    ) -> WorkerRecord:
        """See Store.set_worker_state; the error redacted."""
        return self.inner.set_worker_state(
            name, state, error=self._text(error), endpoint=endpoint,
            container_id=container_id, only_from=only_from,
        )  # fmt: skip

    def insert_arrivals(self, arrivals: Sequence[Arrival]) -> list[list[Task] | None]:
        """See Store.insert_arrivals; each outcome's error and reasons redacted (the events
        are stored as received)."""
        clean = [a if a.outcome is None else replace(a, outcome=self._outcome(a.outcome))
                 for a in arrivals]  # fmt: skip
        return self.inner.insert_arrivals(clean)

    def record_outcomes(self, outcomes: Sequence[EventOutcome]) -> list[list[Task]]:
        """See Store.record_outcomes; errors and reasons redacted."""
        return self.inner.record_outcomes([self._outcome(o) for o in outcomes])

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> list[Task | None]:
        """See Store.update_tasks; errors, results, details and plans redacted."""
        return self.inner.update_tasks([self._task_update(u) for u in updates])

    def add_timeline(self, entries: Sequence[TimelineEntry]) -> None:
        """See Store.add_timeline; details redacted."""
        self.inner.add_timeline([self._entry(e) for e in entries])

    def plan_writes(self, plans: Sequence[WritePlan]) -> list[list[WriteRecord]]:
        """See Store.plan_writes; the writes' texts, details and notes redacted."""
        return self.inner.plan_writes([self._plan(p) for p in plans])

    def update_writes(self, updates: Sequence[WriteUpdate]) -> list[WriteRecord | None]:
        """See Store.update_writes; details (what the forge said) redacted."""
        clean = [replace(u, detail=self._text(u.detail)) if u.detail else u for u in updates]
        return self.inner.update_writes(clean)

    # --- everything else passes through -------------------------------------------------

    def schema_version(self) -> int:
        """See Store.schema_version."""
        return self.inner.schema_version()

    def get_worker(self, name: str) -> WorkerRecord:
        """See Store.get_worker."""
        return self.inner.get_worker(name)

    def list_workers(self) -> list[WorkerRecord]:
        """See Store.list_workers."""
        return self.inner.list_workers()

    def remove_worker(self, name: str, *, allowed_states: Collection[WorkerState]) -> None:
        """See Store.remove_worker."""
        self.inner.remove_worker(name, allowed_states=allowed_states)

    def count_workers(self) -> int:
        """See Store.count_workers."""
        return self.inner.count_workers()

    def insert_events(self, deliveries: Sequence[Delivery]) -> list[Event | None]:
        """See Store.insert_events (deliveries are stored as received)."""
        return self.inner.insert_events(deliveries)

    def get_event(self, event_id: str) -> Event:
        """See Store.get_event."""
        return self.inner.get_event(event_id)

    def get_event_brief(self, event_id: str, *, keys: Sequence[str]) -> Event | None:
        """See Store.get_event_brief."""
        return self.inner.get_event_brief(event_id, keys=keys)

    def list_events(
        self, *, state: EventState | None = None, limit: int = 100, oldest_first: bool = False
    ) -> list[Event]:
        """See Store.list_events."""
        return self.inner.list_events(state=state, limit=limit, oldest_first=oldest_first)

    def list_matches(self, event_id: str) -> list[MatchRecord]:
        """See Store.list_matches."""
        return self.inner.list_matches(event_id)

    def list_tasks(
        self,
        *,
        event_id: str | None = None,
        state: TaskState | None = None,
        worker: str | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[Task]:
        """See Store.list_tasks."""
        return self.inner.list_tasks(
            event_id=event_id, state=state, worker=worker, limit=limit, before=before
        )

    def event_page(self, query: EventQuery) -> list[EventRow]:
        """See Store.event_page."""
        return self.inner.event_page(query)

    def failed_writes(
        self, *, limit: int = 50, before: tuple[float, str] | None = None
    ) -> list[WriteRecord]:
        """See Store.failed_writes."""
        return self.inner.failed_writes(limit=limit, before=before)

    def worker_figures(self, *, since: float) -> dict[str, WorkerFigures]:
        """See Store.worker_figures."""
        return self.inner.worker_figures(since=since)

    def recent_changes(
        self, *, after: float, limit: int = 200
    ) -> tuple[list[EventRow], list[Task]]:
        """See Store.recent_changes."""
        return self.inner.recent_changes(after=after, limit=limit)

    def get_task(self, task_id: str) -> Task:
        """See Store.get_task."""
        return self.inner.get_task(task_id)

    def last_reviewed_head(self, worker: str, *, source: str, repo: str, number: int) -> str:
        """See Store.last_reviewed_head."""
        return self.inner.last_reviewed_head(worker, source=source, repo=repo, number=number)

    def create_tasks(self, tasks: Sequence[NewTask]) -> list[Task]:
        """See Store.create_tasks."""
        return self.inner.create_tasks(tasks)

    def task_states(self, task_ids: Collection[str]) -> dict[str, TaskState]:
        """See Store.task_states."""
        return self.inner.task_states(task_ids)

    def set_task_tokens(self, counts: Sequence[tuple[str, int]]) -> None:
        """See Store.set_task_tokens."""
        self.inner.set_task_tokens(counts)

    def due_tasks(self, *, now: float, limit: int = 1000, skip: Collection[str] = ()) -> list[Task]:
        """See Store.due_tasks."""
        return self.inner.due_tasks(now=now, limit=limit, skip=skip)

    def recover(self) -> tuple[int, int]:
        """See Store.recover."""
        return self.inner.recover()

    def register_node(self, node: NodeRecord) -> None:
        """See Store.register_node (a node's host, pid and version are Mecha's own)."""
        self.inner.register_node(node)

    def heartbeat(self, node_id: str, *, lease: float) -> int:
        """See Store.heartbeat."""
        return self.inner.heartbeat(node_id, lease=lease)

    def stop_node(self, node_id: str) -> None:
        """See Store.stop_node."""
        self.inner.stop_node(node_id)

    def list_nodes(self) -> list[NodeRecord]:
        """See Store.list_nodes."""
        return self.inner.list_nodes()

    def take_back(self, *, now: float, exclude_node: str = "", limit: int = 1000) -> list[str]:
        """See Store.take_back."""
        return self.inner.take_back(now=now, exclude_node=exclude_node, limit=limit)

    def list_timeline(
        self,
        *,
        event_id: str | None = None,
        task_id: str | None = None,
        worker: str | None = None,
        limit: int = 10_000,
    ) -> list[TimelineEntry]:
        """See Store.list_timeline."""
        return self.inner.list_timeline(
            event_id=event_id, task_id=task_id, worker=worker, limit=limit
        )

    def due_writes(
        self, *, now: float, limit: int = 1000, skip: Collection[str] = ()
    ) -> list[WriteRecord]:
        """See Store.due_writes."""
        return self.inner.due_writes(now=now, limit=limit, skip=skip)

    def list_writes(
        self, *, event_id: str | None = None, task_id: str | None = None
    ) -> list[WriteRecord]:
        """See Store.list_writes."""
        return self.inner.list_writes(event_id=event_id, task_id=task_id)

    def count_writes(
        self, *, worker: str, action: str, target: str, since: float, exclude: str = ""
    ) -> int:
        """See Store.count_writes."""
        return self.inner.count_writes(
            worker=worker, action=action, target=target, since=since, exclude=exclude
        )

    def reserve_budget(self, reservations: Sequence[Reservation], *, now: float) -> list[Verdict]:
        """See Store.reserve_budget (names and numbers only: nothing to redact)."""
        return self.inner.reserve_budget(reservations, now=now)

    def settle_budget(self, settlements: Sequence[Settlement]) -> None:
        """See Store.settle_budget."""
        self.inner.settle_budget(settlements)

    def budget_use(self, scopes: Sequence[str], *, now: float) -> list[BudgetUse]:
        """See Store.budget_use."""
        return self.inner.budget_use(scopes, now=now)

    def registry_version(self) -> int:
        """See Store.registry_version."""
        return self.inner.registry_version()

    def close(self) -> None:
        """See Store.close."""
        self.inner.close()


def _with_error(record: WorkerRecord, error: str) -> WorkerRecord:
    return record if error == record.error else replace(record, error=error)
