"""Events and match decisions in PostgreSQL: the statements, given a connection (never
commits).

``insert_arrivals`` is a few round trips for a whole batch whatever its size: the events
go in one pipelined ``executemany`` (``ON CONFLICT (source, delivery_id) DO NOTHING``, the
dedupe every node shares), then the timeline, tasks and decisions of the new ones. The
events are inserted in (source, delivery id) order, so two nodes storing overlapping
batches take the unique index's locks in the same order and never deadlock; the first
of two copies in one batch wins, as in SQLite. Raw bodies are ``bytea``, zlib-compressed
above ``COMPRESS_ABOVE`` bytes as SQLite keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from psycopg import errors as pg_errors

from mecha.event import Event, EventState
from mecha.store import Arrival, EventOutcome, MatchRecord
from mecha.store.common import (
    decided_entry,
    event_not_found,
    json_text,
    new_id,
    pack_raw,
    pull_columns,
    received_entry,
    unpack_raw,
)
from mecha.store.flow import new_task
from mecha.store.flow_sql import apply_flow
from mecha.store.pages_sql import HYDRATED_FIELDS, hydrated_columns, shown_columns
from mecha.store.postgres.ids import rows_by_id
from mecha.store.postgres.parts import Conn, insert_rows
from mecha.store.postgres.tasks import add_timeline, ended_flows, insert_tasks
from mecha.task import FlowMark, Task
from mecha.timeline import TimelineEntry

_HYDRATED = HYDRATED_FIELDS.format(mark="%s")
_EVENT_COLUMNS = (
    "id, source, delivery_id, type, actor, subject, attrs, headers, state, error, "
    "created_at, updated_at"
)
_INSERT_EVENT = (
    "INSERT INTO events (id, source, delivery_id, type, actor, subject, attrs, headers, raw, "
    "raw_encoding, state, error, created_at, updated_at, number, head_sha, title, search_text)"
)
_EVENT_MARKS = "%s, %s, %s, %s, %s, %s, %s, %s, %b, %s, %s, %s, %s, %s, %s, %s, %s, %s"
_INSERT_MATCH = (
    "INSERT INTO event_matches (event_id, worker, outcome, rule, reason, task_id, created_at, "
    "event_at)"
)
_MATCH_MARKS = "%s, %s, %s, %s, %s, %s, %s, (SELECT created_at FROM events WHERE id = %s)"
_MATCH_CONFLICT = (
    "ON CONFLICT (event_id, worker) DO UPDATE SET outcome = excluded.outcome, "
    "rule = excluded.rule, reason = excluded.reason, task_id = excluded.task_id"
)


def _event_row(arrival: Arrival) -> tuple[Any, ...]:
    event, outcome = arrival.event, arrival.outcome
    # the outcome is known before the insert, so the row is written once, in its final state
    state, error = (outcome.state, outcome.error) if outcome else (event.state, event.error)
    raw, encoding = pack_raw(event.raw)
    return (
        event.id, event.source, event.delivery_id, event.type, event.actor, event.subject,
        json_text(dict(event.attrs)), json_text(dict(event.headers)), raw, encoding,
        state.value, error, event.created_at, event.updated_at, *pull_columns(event.attrs),
        *shown_columns(event, event.attrs),
    )  # fmt: skip


def insert_arrivals(conn: Conn, arrivals: Sequence[Arrival]) -> list[list[Task] | None]:
    """Insert each arrival's event with its id and times; None in its place if (source,
    delivery id) is stored already, else the tasks its outcome made (recorded at the
    event's ``created_at``, in the same transaction)."""
    if not arrivals:
        return []
    rows = [_event_row(arrival) for arrival in arrivals]  # any bad value fails before SQL
    keys = [(arrival.event.source, arrival.event.delivery_id) for arrival in arrivals]
    order = sorted(range(len(arrivals)), key=keys.__getitem__)  # stable: the first copy wins
    tail = "ON CONFLICT (source, delivery_id) DO NOTHING RETURNING id"
    inserted = {
        row[0]
        for row in insert_rows(conn, _INSERT_EVENT, _EVENT_MARKS, [rows[n] for n in order], tail)
    }
    stored = [arrival.event.id in inserted for arrival in arrivals]
    entries: list[TimelineEntry] = []
    new_tasks: list[Task] = []
    flows: dict[str, FlowMark] = {}
    for arrival, kept in zip(arrivals, stored, strict=True):
        if kept:
            entries.append(received_entry(arrival.event))
            if arrival.outcome is not None:
                entries.append(decided_entry(arrival.outcome, arrival.event.created_at))
                new_tasks.extend(_tasks_of(arrival.outcome, arrival.event.created_at, flows))
    add_timeline(conn, entries)
    placed = insert_tasks(conn, new_tasks)
    _flow(conn, placed, flows)
    tasks = iter(placed)
    made: list[list[Task] | None] = []
    matches: list[tuple[Any, ...]] = []
    for arrival, kept in zip(arrivals, stored, strict=True):
        outcome = arrival.outcome
        if not kept:
            made.append(None)
            continue
        if outcome is None:
            made.append([])
            continue
        mine = [next(tasks) for _ in outcome.tasks]
        matches.extend(_match_rows(outcome, mine, arrival.event.created_at))
        made.append(mine)
    _insert_matches(conn, matches)
    return made


def get_event(conn: Conn, event_id: str) -> Event:
    """The event with this id (or unique id prefix), raw body included; EventNotFound if none."""
    select = f"SELECT {_EVENT_COLUMNS}, raw, raw_encoding FROM events"  # noqa: S608
    rows = rows_by_id(conn, select, event_id)
    if len(rows) != 1:
        raise event_not_found(event_id, found=len(rows))
    row = rows[0]
    return _event(row[:-2], raw=unpack_raw(row[-2], row[-1]))


def event_brief(conn: Conn, event_id: str, keys: Sequence[str]) -> Event | None:
    """The event's source, type, state and only the attributes ``keys`` (no raw body).

    Each key is picked in PostgreSQL (``attrs -> key``): the attributes never travel
    whole, and each value comes back as JSON, so it keeps its type.
    """
    picks = "".join(", attrs -> %s::text" for _ in keys)
    try:
        row = conn.execute(
            f"SELECT id, source, type, state{picks} FROM events WHERE id = %s",  # noqa: S608
            (*keys, event_id),
        ).fetchone()
    except pg_errors.UntranslatableCharacter:  # \u0000 in them: PostgreSQL cannot pick
        whole = conn.execute(
            "SELECT id, source, type, state, attrs FROM events WHERE id = %s", (event_id,)
        ).fetchone()
        row = whole and (*whole[:4], *(whole[4].get(key) for key in keys))
    if row is None:
        return None
    attrs = {key: value for key, value in zip(keys, row[4:], strict=True) if value is not None}
    return Event(
        id=row[0], source=row[1], type=row[2], delivery_id="", actor="", subject="",
        attrs=attrs, state=EventState(row[3]),
    )  # fmt: skip


def list_events(
    conn: Conn, *, state: EventState | None, limit: int, oldest_first: bool = False
) -> list[Event]:
    """Events newest first (oldest first if asked), without their raw bodies."""
    order = "ASC" if oldest_first else "DESC"
    where, params = ("WHERE state = %s", [state.value]) if state else ("", [])
    sql = (
        f"SELECT {_EVENT_COLUMNS} FROM events {where} "  # noqa: S608
        f"ORDER BY created_at {order}, seq {order} LIMIT %s"
    )
    return [_event(row) for row in conn.execute(sql, (*params, limit))]


def record_outcomes(conn: Conn, outcomes: Sequence[EventOutcome], now: float) -> list[list[Task]]:
    """Write each event's new state, decisions and tasks; return the tasks created for each."""
    created: list[list[Task]] = []
    flows: dict[str, FlowMark] = {}
    for outcome in outcomes:
        tasks = insert_tasks(conn, _tasks_of(outcome, now, flows))
        add_timeline(conn, [decided_entry(outcome, now)])
        _insert_matches(conn, _match_rows(outcome, tasks, now))
        if outcome.attrs is None:
            conn.execute(
                "UPDATE events SET state = %s, error = %s, updated_at = %s WHERE id = %s",
                (outcome.state.value, outcome.error, now, outcome.event_id),
            )
        else:
            conn.execute(
                "UPDATE events SET state = %s, error = %s, attrs = %s, title = %s, "
                "search_text = %s, updated_at = %s WHERE id = %s",
                (outcome.state.value, outcome.error, json_text(outcome.attrs),
                 *_shown(conn, outcome.event_id, outcome.attrs), now, outcome.event_id),
            )  # fmt: skip
        created.append(tasks)
    # after the events' own state: a task born superseded may end its event
    _flow(conn, [task for tasks in created for task in tasks], flows)
    return created


def _tasks_of(outcome: EventOutcome, now: float, flows: dict[str, FlowMark]) -> list[Task]:
    """An outcome's tasks to insert; the flow of each keyed one goes in ``flows`` by id."""
    tasks = [new_task(new, new_id(), now) for new in outcome.tasks]
    flows.update((t.id, n.flow) for t, n in zip(tasks, outcome.tasks, strict=True) if n.flow)
    return tasks


def _flow(conn: Conn, tasks: Sequence[Task], flows: dict[str, FlowMark]) -> None:
    """What the new keyed tasks among ``tasks`` (not those matched before) do to their keys.

    Each (worker, key) is locked first (an advisory lock each, in one order, held to the
    commit, taken after every other row this transaction writes): two nodes storing events
    of one key take turns, so the second sees the first's task and replaces it."""
    placed = [(task, flows[task.id]) for task in tasks if task.id in flows]
    if not placed:
        return
    keys = sorted({f"{task.worker}\n{flow.key}" for task, flow in placed})
    conn.execute(
        "SELECT pg_advisory_xact_lock(%s, h) FROM (SELECT DISTINCT hashtext(k) AS h "
        "FROM unnest(%s::text[]) AS k ORDER BY h) AS keys",
        (_FLOW_LOCK, keys),
    ).fetchall()
    ended_flows(conn, apply_flow(conn, placed, "%s"), placed[-1][0].created_at)


#: the first key of the advisory locks that make one flow key's new tasks take turns
_FLOW_LOCK = 0x6D666C77


def _insert_matches(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """One statement; a worker decided twice about one event keeps its last decision, as
    one upsert a row would (one statement may not change a row twice)."""
    last = {(row[0], row[1]): row for row in rows}
    insert_rows(conn, _INSERT_MATCH, _MATCH_MARKS, list(last.values()), _MATCH_CONFLICT)


def _match_rows(outcome: EventOutcome, tasks: Sequence[Task], now: float) -> list[tuple[Any, ...]]:
    by_worker = {task.worker: task.id for task in tasks}
    return [
        (outcome.event_id, d.worker, str(d.outcome), d.rule, d.reason, by_worker.get(d.worker, ""),
         now, outcome.event_id)
        for d in outcome.decisions
    ]  # fmt: skip


def _shown(conn: Conn, event_id: str, attrs: dict[str, Any]) -> tuple[str, str]:
    """The ``title`` and ``search_text`` columns of an event hydrated to ``attrs``."""
    return hydrated_columns(conn.execute(_HYDRATED, (event_id,)).fetchone(), attrs)


def list_matches(conn: Conn, event_id: str) -> list[MatchRecord]:
    """The match decisions recorded for one event, by worker name."""
    rows = conn.execute(
        "SELECT worker, outcome, rule, reason, task_id FROM event_matches "
        "WHERE event_id = %s ORDER BY worker",
        (event_id,),
    )
    return [
        MatchRecord(worker=w, outcome=o, rule=r, reason=why, task_id=t) for w, o, r, why, t in rows
    ]


def registry_version(conn: Conn) -> int:
    """A number that changes whenever a worker is added, replaced or removed."""
    row = conn.execute("SELECT version FROM registry WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def _event(row: Sequence[Any], *, raw: bytes = b"") -> Event:
    (event_id, source, delivery_id, type_, actor, subject, attrs, headers, state, error,
     created, updated) = row  # fmt: skip
    return Event(
        id=event_id, source=source, delivery_id=delivery_id, type=type_, actor=actor,
        subject=subject, attrs=attrs, headers=json.loads(headers),
        state=EventState(state), error=error, raw=raw, created_at=created, updated_at=updated,
    )  # fmt: skip
