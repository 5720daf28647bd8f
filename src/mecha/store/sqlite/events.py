"""Events, match decisions and tasks in SQLite: the statements, given a connection.

``SqliteStore`` opens the transaction and hands the connection here; these functions never
commit. Raw bodies above ``COMPRESS_ABOVE`` bytes are kept zlib-compressed (webhook JSON
shrinks about 5x, which is less to write and to sync).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from mecha.event import Event, EventState
from mecha.store import Arrival, EventOutcome, MatchRecord
from mecha.store.common import (
    TASK_COLUMNS,
    decided_entry,
    event_not_found,
    json_text,
    pack_raw,
    pull_columns,
    received_entry,
    task_from_row,
    unpack_raw,
)
from mecha.store.flow import new_task
from mecha.store.flow_sql import apply_flow
from mecha.store.pages_sql import HYDRATED_FIELDS, hydrated_columns, shown_columns
from mecha.store.sqlite.ids import new_id, rows_by_id
from mecha.store.sqlite.tasks import add_timeline, ended_flows, insert_task
from mecha.task import FlowMark, Task

_HYDRATED = HYDRATED_FIELDS.format(mark="?")
_EVENT_COLUMNS = (
    "id, source, delivery_id, type, actor, subject, attrs, headers, state, error, "
    "created_at, updated_at"
)
_INSERT_EVENT = (
    "INSERT INTO events (id, source, delivery_id, type, actor, subject, attrs, headers, raw, "
    "raw_encoding, state, error, created_at, updated_at, number, head_sha, title, search_text) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (source, delivery_id) DO NOTHING"
)


def insert_arrivals(
    conn: sqlite3.Connection, arrivals: Sequence[Arrival]
) -> list[list[Task] | None]:
    """Insert each arrival's event with its id and times; None in its place if (source,
    delivery id) is stored already, else the tasks its outcome made (recorded at the
    event's ``created_at``, in the same transaction)."""
    made: list[list[Task] | None] = []
    for arrival in arrivals:
        event, outcome = arrival.event, arrival.outcome
        # the outcome is known before the insert, so the row is written once, in its final state
        state, error = (outcome.state, outcome.error) if outcome else (event.state, event.error)
        raw, encoding = pack_raw(event.raw)
        cursor = conn.execute(
            _INSERT_EVENT,
            (
                event.id, event.source, event.delivery_id, event.type, event.actor,
                event.subject, json_text(dict(event.attrs)), json_text(dict(event.headers)),
                raw, encoding, state.value, error, event.created_at, event.updated_at,
                *pull_columns(event.attrs), *shown_columns(event, event.attrs),
            ),
        )  # fmt: skip
        if cursor.rowcount != 1:  # a duplicate delivery: nothing of it is written
            made.append(None)
            continue
        add_timeline(conn, [received_entry(event)])
        placed: list[tuple[Task, FlowMark]] = []
        made.append(_record_decisions(conn, outcome, event.created_at, placed) if outcome else [])
        if placed:
            ended_flows(conn, apply_flow(conn, placed, "?"), event.created_at)
    return made


def get_event(conn: sqlite3.Connection, event_id: str) -> Event:
    """The event with this id (or unique id prefix), raw body included; EventNotFound if none."""
    select = f"SELECT {_EVENT_COLUMNS}, raw, raw_encoding FROM events"  # noqa: S608
    rows = rows_by_id(conn, select, event_id)
    if len(rows) != 1:
        raise event_not_found(event_id, found=len(rows))
    row = rows[0]
    return _event(row[:-2], raw=unpack_raw(row[-2], row[-1]))


def event_brief(conn: sqlite3.Connection, event_id: str, keys: Sequence[str]) -> Event | None:
    """The event's source, type, state and only the attributes ``keys`` (no raw body).

    One ``json_extract`` with every path parses the stored attributes once, in SQLite. It
    is given two paths at least (one twice), so it answers a JSON array whose values keep
    their types: with one path it would answer ``true`` as 1 and an object as its text.
    """
    paths = [f'$."{key}"' for key in keys]
    paths *= 2 if len(paths) == 1 else 1
    picks = f"json_extract(attrs, {', '.join('?' * len(paths))})" if paths else "'[]'"
    row = conn.execute(
        f"SELECT id, source, type, state, {picks} FROM events WHERE id = ?",  # noqa: S608
        (*paths, event_id),
    ).fetchone()
    if row is None:
        return None
    values = json.loads(row[4])[: len(keys)]
    attrs = {key: value for key, value in zip(keys, values, strict=True) if value is not None}
    return Event(
        id=row[0], source=row[1], type=row[2], delivery_id="", actor="", subject="",
        attrs=attrs, state=EventState(row[3]),
    )  # fmt: skip


def list_events(
    conn: sqlite3.Connection, *, state: EventState | None, limit: int, oldest_first: bool = False
) -> list[Event]:
    """Events newest first (oldest first if asked), without their raw bodies."""
    order = "ASC" if oldest_first else "DESC"
    where, params = ("WHERE state = ?", [state.value]) if state else ("", [])
    sql = (
        f"SELECT {_EVENT_COLUMNS} FROM events {where} "  # noqa: S608
        f"ORDER BY created_at {order}, rowid {order} LIMIT ?"
    )
    return [_event(row) for row in conn.execute(sql, (*params, limit))]


def record_outcomes(
    conn: sqlite3.Connection, outcomes: Sequence[EventOutcome], now: float
) -> list[list[Task]]:
    """Write each event's new state, decisions and tasks; return the tasks created for each."""
    created: list[list[Task]] = []
    placed: list[tuple[Task, FlowMark]] = []
    for outcome in outcomes:
        tasks = _record_decisions(conn, outcome, now, placed)
        if outcome.attrs is None:
            conn.execute(
                "UPDATE events SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                (outcome.state.value, outcome.error, now, outcome.event_id),
            )
        else:
            conn.execute(
                "UPDATE events SET state = ?, error = ?, attrs = ?, title = ?, search_text = ?, "
                "updated_at = ? WHERE id = ?",
                (outcome.state.value, outcome.error, json_text(outcome.attrs),
                 *_shown(conn, outcome.event_id, outcome.attrs), now, outcome.event_id),
            )  # fmt: skip
        created.append(tasks)
    # after the events' own state: a task born superseded may end its event
    if placed:
        ended_flows(conn, apply_flow(conn, placed, "?"), now)
    return created


def _record_decisions(
    conn: sqlite3.Connection, outcome: EventOutcome, now: float, placed: list[tuple[Task, FlowMark]]
) -> list[Task]:
    """Insert an outcome's tasks and decisions; the tasks (existing ones for known keys)."""
    tasks = _insert_tasks(conn, outcome, now, placed)
    by_worker = {task.worker: task.id for task in tasks}
    add_timeline(conn, [decided_entry(outcome, now)])
    if outcome.decisions:
        conn.executemany(
            "INSERT INTO event_matches (event_id, worker, outcome, rule, reason, task_id, "
            "created_at, event_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
            "(SELECT created_at FROM events WHERE id = ?)) "
            "ON CONFLICT (event_id, worker) DO UPDATE SET outcome = excluded.outcome, "
            "rule = excluded.rule, reason = excluded.reason, task_id = excluded.task_id",
            [
                (outcome.event_id, d.worker, d.outcome, d.rule, d.reason,
                 by_worker.get(d.worker, ""), now, outcome.event_id)
                for d in outcome.decisions
            ],
        )  # fmt: skip
    return tasks


def _shown(conn: sqlite3.Connection, event_id: str, attrs: dict[str, Any]) -> tuple[str, str]:
    """The ``title`` and ``search_text`` columns of an event hydrated to ``attrs``."""
    return hydrated_columns(conn.execute(_HYDRATED, (event_id,)).fetchone(), attrs)


def list_matches(conn: sqlite3.Connection, event_id: str) -> list[MatchRecord]:
    """The match decisions recorded for one event, by worker name."""
    rows = conn.execute(
        "SELECT worker, outcome, rule, reason, task_id FROM event_matches "
        "WHERE event_id = ? ORDER BY worker",
        (event_id,),
    )
    return [
        MatchRecord(worker=w, outcome=o, rule=r, reason=why, task_id=t) for w, o, r, why, t in rows
    ]


def registry_version(conn: sqlite3.Connection) -> int:
    """A number that changes whenever a worker is added, replaced or removed."""
    return int(conn.execute("SELECT version FROM registry WHERE id = 1").fetchone()[0])


def _insert_tasks(
    conn: sqlite3.Connection, outcome: EventOutcome, now: float, placed: list[tuple[Task, FlowMark]]
) -> list[Task]:
    """Insert an outcome's tasks; the new keyed ones are added to ``placed``."""
    tasks = []
    for new in outcome.tasks:
        task = new_task(new, new_id(), now)
        if insert_task(conn, task):
            tasks.append(task)
            if new.flow is not None:
                placed.append((task, new.flow))
        else:  # matched before (e.g. recovery after a crash): keep the first task
            row = conn.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE dedup_key = ?",  # noqa: S608
                (new.dedup_key,),
            ).fetchone()
            tasks.append(task_from_row(row))
    return tasks


def _event(row: Sequence[Any], *, raw: bytes = b"") -> Event:
    (event_id, source, delivery_id, type_, actor, subject, attrs, headers, state, error,
     created, updated) = row  # fmt: skip
    return Event(
        id=event_id, source=source, delivery_id=delivery_id, type=type_, actor=actor,
        subject=subject, attrs=json.loads(attrs), headers=json.loads(headers),
        state=EventState(state), error=error, raw=raw, created_at=created, updated_at=updated,
    )  # fmt: skip
