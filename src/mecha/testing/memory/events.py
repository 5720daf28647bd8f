"""Events and match decisions in memory, as ``mecha.store.sqlite.events`` keeps them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from mecha.errors import StoreError
from mecha.event import Event, EventState
from mecha.store import Arrival, EventOutcome, MatchRecord
from mecha.store.common import (
    decided_entry,
    event_not_found,
    json_text,
    new_id,
    pull_columns,
    received_entry,
)
from mecha.store.flow import new_task
from mecha.store.pages_sql import shown_columns
from mecha.task import FlowMark, Task, TaskState
from mecha.testing.memory.flow import apply_flow
from mecha.testing.memory.tables import EventRow, MatchRow, Tables, TaskRow, by_id, limited
from mecha.testing.memory.tasks import ended_flows, insert_task


def insert_arrivals(tables: Tables, arrivals: Sequence[Arrival]) -> list[list[Task] | None]:
    """Store each arrival's event with its id and times; None for a duplicate delivery,
    else the tasks its outcome made (at the event's ``created_at``)."""
    made: list[list[Task] | None] = []
    for arrival in arrivals:
        event, outcome = arrival.event, arrival.outcome
        state, error = (outcome.state, outcome.error) if outcome else (event.state, event.error)
        number, head_sha = pull_columns(event.attrs)
        title, text = shown_columns(event, event.attrs)
        row = EventRow(
            seq=0, id=event.id, source=event.source, delivery_id=event.delivery_id,
            type=event.type, actor=event.actor, subject=event.subject,
            attrs=json_text(dict(event.attrs)), headers=json_text(dict(event.headers)),
            raw=bytes(event.raw), state=EventState(state), error=error,
            created_at=float(event.created_at), updated_at=float(event.updated_at),
            number=number, head_sha=head_sha, title=title, search_text=text,
        )  # fmt: skip
        delivery = (event.source, event.delivery_id)
        if delivery in tables.deliveries:  # a duplicate delivery: nothing of it is written
            made.append(None)
            continue
        if event.id in tables.events:
            raise StoreError(
                f"an event with the id {event.id} is stored already (while storing events)",
                hint="this is a bug in mecha: event ids are made fresh; report it",
            )
        tables.events[event.id] = dataclasses.replace(row, seq=tables.next_seq())
        tables.deliveries[delivery] = event.id
        tables.add_timeline([received_entry(event)])
        placed: list[tuple[Task, FlowMark]] = []
        made.append(_record_decisions(tables, outcome, row.created_at, placed) if outcome else [])
        if placed:
            ended_flows(tables, apply_flow(tables, placed), row.created_at)
    return made


def get_event(tables: Tables, event_id: str) -> Event:
    """The event with this id or unique prefix, raw body included; EventNotFound."""
    rows = by_id(tables.events, event_id)
    if len(rows) != 1:
        raise event_not_found(event_id, found=len(rows))
    return rows[0].event(raw=True)


def event_brief(tables: Tables, event_id: str, keys: Sequence[str]) -> Event | None:
    """The event's source, type, state and only the attributes ``keys`` (exact id)."""
    row = tables.events.get(event_id)
    if row is None:
        return None
    attrs = json.loads(row.attrs)
    picked = {key: attrs[key] for key in keys if attrs.get(key) is not None}
    return Event(
        id=row.id, source=row.source, type=row.type, delivery_id="", actor="", subject="",
        attrs=picked, state=row.state,
    )  # fmt: skip


def list_events(
    tables: Tables, *, state: EventState | None, limit: int, oldest_first: bool
) -> list[Event]:
    """Events newest first (oldest first if asked), by arrival time, then as stored."""
    rows = [row for row in tables.events.values() if state is None or row.state == state]
    rows.sort(key=lambda row: (row.created_at, row.seq), reverse=not oldest_first)
    return [row.event() for row in limited(rows, limit)]


def record_outcomes(
    tables: Tables, outcomes: Sequence[EventOutcome], now: float
) -> list[list[Task]]:
    """Each event's new state, decisions and tasks; the tasks for each."""
    created: list[list[Task]] = []
    placed: list[tuple[Task, FlowMark]] = []
    for outcome in outcomes:
        tasks = _record_decisions(tables, outcome, now, placed)
        row = tables.events.get(outcome.event_id)
        if row is not None:
            changed = dataclasses.replace(
                row, state=EventState(outcome.state), error=outcome.error, updated_at=now
            )
            if outcome.attrs is not None:
                title, text = shown_columns(row.event(), outcome.attrs)
                changed = dataclasses.replace(
                    changed, attrs=json_text(outcome.attrs), title=title, search_text=text
                )
            tables.events[row.id] = changed
        created.append(tasks)
    if placed:
        ended_flows(tables, apply_flow(tables, placed), now)
    return created


def _record_decisions(
    tables: Tables, outcome: EventOutcome, now: float, placed: list[tuple[Task, FlowMark]]
) -> list[Task]:
    """An outcome's tasks (existing ones for known dedup keys), then its timeline entry,
    then its decisions (a worker's earlier decision about the event is replaced). The new
    keyed tasks are added to ``placed``."""
    tasks = [_insert_task(tables, outcome, i, now, placed) for i in range(len(outcome.tasks))]
    by_worker = {task.worker: task.id for task in tasks}
    tables.add_timeline([decided_entry(outcome, now)])
    if outcome.decisions and outcome.event_id not in tables.events:
        # SQLite refuses the decisions' rows (a foreign key): the whole transaction fails
        raise StoreError(
            f"no event has the id {outcome.event_id} (while recording match decisions)",
            hint="this is a bug in mecha: decisions were recorded for an event never stored",
        )
    for decision in outcome.decisions:
        key = (outcome.event_id, decision.worker)
        known = tables.matches.get(key)
        tables.matches[key] = MatchRow(
            event_id=outcome.event_id, worker=decision.worker, outcome=str(decision.outcome),
            rule=decision.rule, reason=decision.reason,
            task_id=by_worker.get(decision.worker, ""),
            created_at=known.created_at if known is not None else now,
            event_at=tables.events[outcome.event_id].created_at,
        )  # fmt: skip
    return tasks


def _insert_task(
    tables: Tables, outcome: EventOutcome, index: int, now: float,
    placed: list[tuple[Task, FlowMark]],
) -> Task:  # fmt: skip
    new = outcome.tasks[index]
    task = new_task(new, new_id(), now)
    row = TaskRow(
        seq=0, id=task.id, worker=new.worker, event_id=new.event_id, dedup_key=new.dedup_key,
        prompt=new.prompt, context=json_text(dict(new.context)), state=TaskState.PENDING,
        created_at=now, updated_at=now, next_retry_at=task.next_retry_at,
        flow_key=task.flow_key, flow_at=task.flow_at,
    )  # fmt: skip
    if insert_task(tables, row):
        if new.flow is not None:
            placed.append((task, new.flow))
        return row.task()
    # matched before (e.g. recovery after a crash): keep the first task
    return tables.tasks[tables.dedup[new.dedup_key]].task()


def list_matches(tables: Tables, event_id: str) -> list[MatchRecord]:
    """The match decisions recorded for one event, by worker name."""
    rows = sorted(
        (row for (event, _), row in tables.matches.items() if event == event_id),
        key=lambda row: row.worker,
    )
    return [
        MatchRecord(worker=r.worker, outcome=r.outcome, rule=r.rule, reason=r.reason,
                    task_id=r.task_id)
        for r in rows
    ]  # fmt: skip
