"""Migration 12 (the dashboard's pages) on a database from before, SQLite and PostgreSQL:
the events kept get their ``title`` column from their attributes, their decisions the
event's time (``event_at``), and the pages find them through the new indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from mecha.store import EventQuery
from mecha.store.postgres import migrations as pg_migrations
from mecha.store.postgres.store import open_postgres
from mecha.store.sqlite import migrations as sqlite_migrations
from mecha.store.sqlite.store import open_sqlite
from tests.integration.store.stores import AnyStore

ELEVEN = 11
#: events as a mecha at 11 wrote them: (id, attrs, created_at); and the decisions
EVENTS = (
    ("e-titled", '{"number":7,"title":"Old title"}', 10.0),
    ("e-odd", '{"number":8,"title":["not","text"]}', 20.0),
    ("e-bare", "{}", 30.0),
)
MATCHES = (("e-titled", "review", "t-1"), ("e-odd", "review", ""), ("e-bare", "lint", "t-2"))


def _fill(conn: Any, mark: str, raw: object) -> None:
    marks = ", ".join([mark] * 7)
    for event_id, attrs, at in EVENTS:
        conn.execute(
            "INSERT INTO events (id, source, delivery_id, type, actor, subject, attrs, headers, "  # noqa: S608
            f"raw, state, created_at, updated_at) VALUES ({marks}, '{{}}', {mark}, 'completed', "
            f"{mark}, {mark})",
            (event_id, "github", f"d-{event_id}", "pull_request.opened", "mona", "octo/app",
             attrs, raw, at, at),
        )  # fmt: skip
    for event_id, worker, task_id in MATCHES:
        conn.execute(
            "INSERT INTO event_matches (event_id, worker, outcome, rule, reason, task_id, "  # noqa: S608
            f"created_at) VALUES ({mark}, {mark}, {mark}, 0, '', {mark}, 99)",
            (event_id, worker, "matched" if task_id else "not_matched", task_id),
        )


def _check(store: AnyStore) -> None:
    page = store.event_page(EventQuery())
    # the number is migration 10's column, left at 0 for events stored before it
    assert [(r.event.id, r.event.attrs) for r in page] == [
        ("e-bare", {}), ("e-odd", {}), ("e-titled", {"title": "Old title"})
    ]  # fmt: skip
    assert [r.event.id for r in store.event_page(EventQuery(search="OLD TITLE"))] == ["e-titled"]
    # the decisions got their event's time: paged by it, not by when they were made (99)
    review = EventQuery(worker="review", until=15.0)
    assert [r.event.id for r in store.event_page(review)] == ["e-titled"]
    assert [r.event.id for r in store.event_page(EventQuery(worker="lint"))] == ["e-bare"]


def test_a_sqlite_database_at_eleven_is_brought_to_the_pages(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        eleven = [m for m in sqlite_migrations.MIGRATIONS if m.version <= ELEVEN]
        assert sqlite_migrations.migrate(conn, migrations=eleven) == ELEVEN
        _fill(conn, "?", b"")
    finally:
        conn.close()
    store = open_sqlite(path)
    try:
        assert store.schema_version() == sqlite_migrations.LATEST_VERSION == 12
        _check(store)
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"events_page", "matches_worker", "tasks_figures", "writes_failed"} <= names
    assert "tasks_worker_state" not in names  # tasks_figures starts with its columns


def test_a_postgres_database_at_eleven_is_brought_to_the_pages(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        eleven = [m for m in pg_migrations.MIGRATIONS if m.version <= ELEVEN]
        assert pg_migrations.migrate(conn, migrations=eleven) == ELEVEN
        _fill(conn, "%s", b"")
    store = open_postgres(pg_url)
    try:
        assert store.schema_version() == pg_migrations.LATEST_VERSION == 12
        _check(store)
    finally:
        store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT to_regclass('events_page') IS NOT NULL, "
            "to_regclass('tasks_worker_state') IS NULL"
        ).fetchone()
    assert found == (True, True)
