"""The dashboard's reads go through indexes, on SQLite and PostgreSQL: each statement's
plan (SQLite's ``EXPLAIN QUERY PLAN``; PostgreSQL's ``EXPLAIN`` with sequential scans,
sorts and bitmap scans priced out, so a plan shows what an index *can* do) names the
index meant for it, and reads no table whole nor sorts a whole table's rows.
``bench/store_pages.py`` times them on 100,000 events."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest

from mecha.event import EventState
from mecha.store import EventQuery
from mecha.store.common import TASK_COLUMNS, WRITE_COLUMNS
from mecha.store.pages_sql import (
    BEFORE,
    LATENCIES,
    PAGE_COLUMNS,
    changed_sql,
    failed_writes_sql,
    figures_sql,
    page_sql,
    workers_sql,
)
from mecha.store.postgres.store import PostgresStore
from mecha.store.sqlite.store import SqliteStore
from tests.integration.store.stores import AnyStore
from tests.integration.store.test_store_pages import event, outcome, put

#: each page's query and the index it is read by (a search scans the index, not the rows)
PAGES = [
    (EventQuery(), "events_page"),
    (EventQuery(before=(5.0, "x")), "events_page"),
    (EventQuery(since=1.0, until=9.0), "events_page"),
    (EventQuery(state=EventState.FAILED, before=(5.0, "x")), "events_state_page"),
    (EventQuery(source="gitlab", before=(5.0, "x")), "events_page"),
    (EventQuery(repo="octo/app", before=(5.0, "x")), "events_subject_page"),
    (EventQuery(worker="review", before=(5.0, "x"), until=9.0), "matches_worker"),
    (EventQuery(worker="review", repo="octo/app"), "matches_worker"),
    (EventQuery(search="fix"), "events_page"),
]


def statements(mark: str) -> list[tuple[str, list[Any], str]]:
    """(statement, parameters, the index it must use) of every dashboard read."""
    found = [(*page_sql(query, mark), index) for query, index in PAGES]
    events_changed, events_tie = changed_sql("events", PAGE_COLUMNS, mark)
    tasks_changed, tasks_tie = changed_sql("tasks", TASK_COLUMNS, mark)
    tie = "rowid" if mark == "?" else "seq"
    tasks_page = f"SELECT {TASK_COLUMNS} FROM tasks WHERE {BEFORE} "  # noqa: S608
    tasks_page += f"ORDER BY created_at DESC, {tie} DESC LIMIT {mark}"
    tasks_page = tasks_page.format(mark=mark, tie=tie)
    return [
        *found,
        (workers_sql(mark, 2), ["a", "b"], "event_matches"),
        (events_changed, [1.0, 10], "events_changed"),
        (events_tie, [1.0, "a"], "events_changed"),
        (tasks_changed, [1.0, 10], "tasks_changed"),
        (tasks_tie, [1.0, "a"], "tasks_changed"),
        (
            failed_writes_sql(
                WRITE_COLUMNS,
                mark,
                paged=True,
                hint="INDEXED BY writes_failed" if mark == "?" else "",
            ),
            [1.0, "k", 50],
            "writes_failed",
        ),
        (figures_sql(mark), [1.0, 1.0], "tasks_figures"),
        (LATENCIES.format(mark=mark), ["review", 1.0], "tasks_figures"),
        (tasks_page, [5.0, "t", 50], "tasks_page"),
    ]


def filled(store: AnyStore) -> None:
    made = [event(n, float(n)) for n in range(10)]
    put(store, *[(e, outcome(e, ["review"], ["lint"])) for e in made])


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_sqlite_reads_each_page_through_its_index(store: SqliteStore) -> None:
    filled(store)
    with sqlite3.connect(store.path) as conn:
        for sql, params, index in statements("?"):
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            said = f"{sql}\n{plan}"
            wanted = "sqlite_autoindex_event_matches_1" if index == "event_matches" else index
            assert any(f"INDEX {wanted}" in step for step in plan), said
            # no table read whole (w: the workers found, a few rows), no sort of all its rows
            whole = [s for s in plan if s.startswith("SCAN") and "INDEX" not in s]
            assert whole in ([], ["SCAN w"] * 2), said
            assert not [s for s in plan if "TEMP B-TREE FOR ORDER BY" in s], said


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_postgres_reads_each_page_through_its_index(store: PostgresStore) -> None:
    filled(store)
    with psycopg.connect(store.server.conninfo, autocommit=True) as conn:
        conn.execute("ANALYZE")
        for off in ("seqscan", "sort", "bitmapscan"):
            conn.execute(f"SET enable_{off} = off".encode())
        for sql, params, index in statements("%s"):
            plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {sql}".encode(), params))
            said = f"{sql}\n{plan}"
            wanted = "event_matches_pkey" if index == "event_matches" else index
            assert f"using {wanted}" in plan, said
            assert "Seq Scan" not in plan, said
            assert "  Sort  " not in f"  {plan}  " and "-> Sort" not in plan, said
