"""Migrations with a number left out, on SQLite and PostgreSQL.

Issue 17's parts took their migration numbers before landing (flow control 8, budgets 9,
incremental review 10), so a release may hold 10 without 8 and 9 for a while. ``migrate``
applies whatever a database lacks in version order, numbers skipped or not; and a
database from before migration 10 keeps its events, their new ``number`` and ``head_sha``
columns left at 0 and '' (so they never count as reviewed: the first review after the
upgrade is a full one).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from mecha.store.postgres import migrations as pg_migrations
from mecha.store.postgres.store import open_postgres
from mecha.store.sqlite import migrations as sqlite_migrations
from mecha.store.sqlite.store import open_sqlite
from tests.integration.store.stores import delivery

#: the migrations up to 7, as a database from before issue 17 has them
BEFORE = 7


def test_sqlite_applies_a_step_past_a_gap_in_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "gap.db", isolation_level=None)
    known = sqlite_migrations.MIGRATIONS
    beyond = sqlite_migrations.Migration(
        version=known[-1].version + 3, name="after a gap", statements=("CREATE TABLE later (x)",)
    )
    assert sqlite_migrations.migrate(conn, migrations=known[:BEFORE]) == BEFORE
    assert sqlite_migrations.migrate(conn, migrations=(*known, beyond)) == beyond.version
    applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(applied) == [*(m.version for m in known), beyond.version]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == beyond.version
    assert sqlite_migrations.migrate(conn, migrations=(*known, beyond)) == beyond.version
    conn.close()


def test_a_sqlite_database_from_before_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    sqlite_migrations.migrate(conn, migrations=sqlite_migrations.MIGRATIONS[:BEFORE])
    conn.close()
    old = _store_one_event_at(path, BEFORE)
    store = open_sqlite(path)
    try:
        assert store.schema_version() == sqlite_migrations.LATEST_VERSION
        assert store.get_event(old).attrs["number"] == 7
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT number, head_sha FROM events WHERE id = ?", (old,))
        assert row.fetchone() == (0, "")


def test_postgres_applies_a_step_past_a_gap_in_order(pg_url: str) -> None:
    known = pg_migrations.MIGRATIONS
    later = ("CREATE TABLE later (x int)",)
    beyond = pg_migrations.Migration(
        version=known[-1].version + 3, name="after a gap", statements=later
    )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert pg_migrations.migrate(conn, migrations=known[:BEFORE]) == BEFORE
        assert pg_migrations.migrate(conn, migrations=(*known, beyond)) == beyond.version
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [row[0] for row in rows] == [*(m.version for m in known), beyond.version]
        assert pg_migrations.migrate(conn, migrations=(*known, beyond)) == beyond.version


def test_a_postgres_database_from_before_gets_the_columns(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        pg_migrations.migrate(conn, migrations=pg_migrations.MIGRATIONS[:BEFORE])
    store = open_postgres(pg_url)
    try:
        assert store.schema_version() == pg_migrations.LATEST_VERSION
        [event] = store.insert_events([delivery("d-1")])
        assert event is not None
    finally:
        store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT number, head_sha FROM events").fetchone()
    assert row == (7, "")  # the delivery's number; it names no head


def _store_one_event_at(path: Path, version: int) -> str:
    """An event written as a mecha at ``version`` writes it (no number/head_sha columns)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert sqlite_migrations.current_version(conn) == version
        conn.execute(
            "INSERT INTO events (id, source, delivery_id, type, actor, subject, attrs, headers, "
            "raw, state, created_at, updated_at) VALUES ('e-old', 'github', 'd-old', "
            "'pull_request.opened', 'mona', 'octo/app', '{\"number\":7,\"head_sha\":\"ab\"}', "
            "'{}', x'', 'completed', 1, 1)"
        )
    finally:
        conn.close()
    return "e-old"
