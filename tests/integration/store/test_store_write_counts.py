"""Counting a worker's writes on one thread (``Store.count_writes``, what
``policy.comment.max_per_hour`` is checked against), on every store; and migration 11, which
indexes it, applied over the gap 8-10 leaves for the other parts of issue 17."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mecha.policy.writes import Place, Write, WriteState, ledger_key
from mecha.store import WritePlan, WriteUpdate
from mecha.store.postgres import migrations as pg_migrations
from mecha.store.postgres.store import open_postgres
from mecha.store.sqlite import migrations as sqlite_migrations
from tests.integration.store.stores import AnyStore

HERE = Place(forge="github", repo="octo/hello", number=7, head_sha="abc")
THERE = Place(forge="github", repo="octo/hello", number=8, head_sha="abc")
OPEN = frozenset({WriteState.PLANNED, WriteState.CALLING})


def write(event: str, *, worker: str = "w", place: Place = HERE, action: str = "comment") -> Write:
    key = ledger_key(event_id=event, worker=worker, action=action, target=place.name,
                     head_sha=place.head_sha)  # fmt: skip
    return Write(key=key, worker=worker, action=action, place=place, body=event)


def plan(*writes: Write, state: WriteState = WriteState.PLANNED) -> WritePlan:
    return WritePlan(task_id="t1", event_id="ev1", writes=writes, state=state)


def count(store: AnyStore, *, since: float, worker: str = "w", target: str = HERE.name,
          exclude: str = "") -> int:  # fmt: skip
    return store.count_writes(worker=worker, action="comment", target=target, since=since,
                              exclude=exclude)  # fmt: skip


def test_a_workers_comments_on_one_thread_are_counted_from_a_time_on(store: AnyStore) -> None:
    before = time.time() - 1
    mine = [write(f"e{n}") for n in range(3)]
    store.plan_writes([plan(*mine)])
    store.plan_writes([plan(write("other", worker="v"), write("there", place=THERE),
                            write("labels", action="labels"))])  # fmt: skip
    assert count(store, since=before) == 3
    assert count(store, since=before, exclude=mine[0].key) == 2  # the write being planned
    assert count(store, since=before, worker="v") == 1
    assert count(store, since=before, target=THERE.name) == 1
    assert count(store, since=time.time() + 1) == 0  # an hour later: none in the window


def test_only_writes_made_or_to_be_made_count(store: AnyStore) -> None:
    before = time.time() - 1
    done, failed, calling, planned = (write(f"s{n}") for n in range(4))
    store.plan_writes([plan(done, failed, calling, planned)])
    store.plan_writes([plan(write("dry"), state=WriteState.DRY_RUN)])
    claims = [WriteUpdate(key=w.key, state=WriteState.CALLING, only_from=OPEN, start_attempt=True)
              for w in (done, failed, calling)]  # fmt: skip
    store.update_writes(claims)
    calls = frozenset({WriteState.CALLING})
    store.update_writes([
        WriteUpdate(key=done.key, state=WriteState.DONE, only_from=calls),
        WriteUpdate(key=failed.key, state=WriteState.FAILED, only_from=calls),
    ])  # fmt: skip
    assert count(store, since=before) == 3  # done, calling, planned; not failed nor the dry run


def test_the_comment_cap_index_is_added_to_an_older_sqlite_database(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "mecha.db", isolation_level=None)
    try:
        seven = [m for m in sqlite_migrations.MIGRATIONS if m.version <= 7]
        assert sqlite_migrations.migrate(conn, migrations=seven) == 7
        assert sqlite_migrations.migrate(conn) == sqlite_migrations.LATEST_VERSION
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
        index = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'writes_thread'")
        assert index.fetchone() is not None
        assert sqlite_migrations.migrate(conn) == sqlite_migrations.LATEST_VERSION  # no more
    finally:
        conn.close()
    assert sorted(versions) == [m.version for m in sqlite_migrations.MIGRATIONS]


def test_the_comment_cap_index_is_added_to_an_older_postgres_database(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        seven = [m for m in pg_migrations.MIGRATIONS if m.version <= 7]
        assert pg_migrations.migrate(conn, migrations=seven) == 7
        assert pg_migrations.migrate(conn) == pg_migrations.LATEST_VERSION
        index = conn.execute("SELECT to_regclass('writes_thread') IS NOT NULL").fetchone()
        assert index is not None and index[0]
        assert pg_migrations.migrate(conn) == pg_migrations.LATEST_VERSION
    store = open_postgres(pg_url)
    try:
        assert store.schema_version() == pg_migrations.LATEST_VERSION
        assert count(store, since=0.0) == 0
    finally:
        store.close()
