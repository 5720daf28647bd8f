"""``copy_sqlite_to_postgres`` (``mecha db copy``): a SQLite database filled through the
Store API, copied into a real PostgreSQL (``pg_url``), reads the same there; a target that
holds rows, a running serve, an old schema, a failure or an interruption mid-way leave the
target as it was."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from mecha.budget import GLOBAL, BudgetLimit, Reservation, Settlement
from mecha.errors import MigrationError, StoreError
from mecha.event import EventState, received
from mecha.policy.writes import Place, Write, WriteState, ledger_key
from mecha.store import Arrival, EventOutcome, TaskUpdate, WritePlan, WriteUpdate
from mecha.store.copy import (
    NOT_COPIED,
    TABLES,
    CopyMismatch,
    Progress,
    TargetNotEmpty,
    copy_sqlite_to_postgres,
)
from mecha.store.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
from mecha.store.postgres.store import PostgresStore, open_postgres
from mecha.store.serve_mark import ServeMark
from mecha.store.sqlite.migrations import MIGRATIONS, migrate
from mecha.store.sqlite.store import SqliteStore, open_sqlite
from mecha.task import NewTask, TaskState
from mecha.timeline import Step, TimelineEntry
from mecha.worker.matching import Decision, Outcome
from tests.integration.store.stores import delivery, worker

PLACE = Place(forge="github", repo="octo/app", number=7, head_sha="abc123")
ALL = frozenset(TaskState)


def fill(store: SqliteStore, events: int = 30) -> None:
    """Workers, events (small and compressed bodies, a NUL), decisions, tasks in every
    state with results and progress, an API task, timeline notes and the write ledger."""
    store.add_workers([worker("alpha"), worker("beta", definition={"name": "beta", "x": [1]})])
    now = time.time()
    arrivals = []
    for n in range(events):
        raw = (b'{"n": %d, "pad": "' % n) + b"y" * (n * 300) + b'"}'  # > 2 KB: zlib
        sent = delivery(f"d-{n}", raw=raw)
        sent = replace(sent, attrs={**sent.attrs, "head_sha": f"{n:040x}"})  # a head per push
        event = received(sent, now=now)  # one instant: ties
        decide = EventOutcome(
            event_id=event.id, state=EventState.MATCHED,
            decisions=[Decision(worker="alpha", outcome=Outcome.MATCHED, rule=0,
                                reason="rule 1 matched"),
                       Decision(worker="beta", outcome=Outcome.NOT_MATCHED,
                                reason="rule 1: no \x00 nul")],
            tasks=[NewTask(worker="alpha", event_id=event.id, prompt=f"Review #{n}",
                           context={"n": n, "nested": {"k": [n]}})],
        )  # fmt: skip
        arrivals.append(Arrival(event=event, outcome=decide if n % 3 else None))
    made = [t for tasks in store.insert_arrivals(arrivals) for t in tasks or []]
    pending = frozenset({TaskState.PENDING})
    running = frozenset({TaskState.RUNNING})
    store.update_tasks([TaskUpdate(task_id=t.id, state=TaskState.RUNNING, only_from=pending,
                                   start_attempt=True, timeout=600) for t in made[:8]])  # fmt: skip
    store.set_task_tokens([(made[0].id, 1234)])
    write = Write(
        key=ledger_key(event_id=made[1].event_id, worker="alpha", action="comment",
                       target=PLACE.name, head_sha=PLACE.head_sha),
        worker="alpha", action="comment", place=PLACE, body="looks good \u2713",
    )  # fmt: skip
    plan = WritePlan(task_id=made[1].id, event_id=made[1].event_id, writes=[write])
    store.update_tasks(
        [TaskUpdate(task_id=made[1].id, state=TaskState.COMPLETED, only_from=running,
                    result={"output": "fine", "labels": ["ok"]}, plan=plan),
         TaskUpdate(task_id=made[2].id, state=TaskState.FAILED, only_from=running,
                    error="upstream said 500")]
    )  # fmt: skip
    done = WriteUpdate(
        key=write.key, state=WriteState.DONE, only_from=frozenset(WriteState), remote_id="c-77"
    )
    store.update_writes([done])
    store.create_tasks([NewTask(worker="beta", event_id="", prompt="an API task")])
    note = TimelineEntry(at=now + 1, step=Step.POLICY, event_id=made[1].event_id,
                         task_id=made[1].id, worker="alpha", detail="note")  # fmt: skip
    store.add_timeline([note])
    # the budget ledger: one reservation settled at its use, one task waiting on the budget
    limit = BudgetLimit(scope="alpha", tasks_per_hour=1)
    asked = [Reservation(task_id=t.id, worker="alpha", tokens=500, limits=(limit,))
             for t in made[10:12]]  # fmt: skip
    first, second = store.reserve_budget(asked, now=now)
    store.settle_budget([Settlement(ticket=first.ticket, task_id=made[10].id, tokens=42)])
    assert first.granted and not second.granted


def snapshot(store: SqliteStore | PostgresStore) -> dict[str, object]:
    """Everything the Store API reads back, NUL read as PostgreSQL keeps it."""
    events = store.list_events(limit=1000)
    tasks = store.list_tasks(limit=1000)
    whole = [store.get_event(e.id) for e in events]
    return {
        "workers": store.list_workers(),
        "events": events,
        "raw": [(e.id, e.raw, e.attrs, e.headers) for e in whole],
        "matches": [
            [
                replace(m, reason=m.reason.replace("\x00", "\ufffd"))
                for m in store.list_matches(e.id)
            ]
            for e in events
        ],
        "tasks": tasks,
        "timeline": [store.list_timeline(event_id=e.id) for e in events],
        "task_timeline": [store.list_timeline(task_id=t.id) for t in tasks],
        "writes": [store.list_writes(event_id=e.id) for e in events],
        # the events' number and head_sha columns (migration 10) came along
        "reviewed": store.last_reviewed_head("alpha", source="github", repo="octo/app", number=7),
        "budgets": store.budget_use(["alpha", "beta", GLOBAL], now=time.time()),
    }


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mecha.db"
    store = open_sqlite(path)
    try:
        fill(store)
    finally:
        store.close()
    yield path


def pg_rows(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        found = {}
        for table in TABLES:
            exists = conn.execute("SELECT to_regclass(%s)", (table.name,)).fetchone()
            if exists and exists[0]:
                row = conn.execute(f"SELECT count(*) FROM {table.name}".encode()).fetchone()  # noqa: S608
                found[table.name] = int(row[0]) if row else 0
        return found


def test_everything_reads_the_same_after_the_copy(source: Path, pg_url: str) -> None:
    sqlite_store = open_sqlite(source)
    before = snapshot(sqlite_store)
    assert before["reviewed"] != ""  # the completed task's head
    registry = sqlite_store.registry_version()
    sqlite_store.close()
    seen: list[Progress] = []
    report = copy_sqlite_to_postgres(source, pg_url, progress=seen.append)
    assert report.matches
    counts = {c.table: (c.source, c.target) for c in report.counts}
    assert counts["workers"] == (2, 2)
    assert counts["events"] == (30, 30)
    assert counts["event_matches"] == (40, 40)  # 20 decided events, 2 decisions each
    assert counts["tasks"] == (21, 21)
    assert counts["writes"] == (1, 1)
    assert (counts["budget_ledger"], counts["budget_waits"]) == ((1, 1), (1, 1))
    finished = [p.table for p in seen if p.finished]
    assert finished[: len(TABLES)] == [t.name for t in TABLES]  # later tables after
    pg = open_postgres(pg_url)
    try:
        after = snapshot(pg)
        assert after == before
        alpha = pg.budget_use(["alpha"], now=time.time())[0]
        assert (alpha.tokens_used, alpha.tasks_used, alpha.tasks_waiting) == (42, 1, 1)
        assert pg.registry_version() >= registry
        # progress was kept: tokens and the running attempt's time limit
        running = pg.list_tasks(state=TaskState.RUNNING)
        assert {t.tokens for t in running} == {0, 1234}
        assert {t.timeout for t in running} == {600}
        # new rows sort after the copied ones
        [new] = pg.insert_events([delivery("d-new")])
        assert new is not None
        newest = pg.list_events(limit=1)[0]
        assert newest.id == new.id
        last = pg.list_timeline(event_id=new.id)[-1]
        with sqlite3.connect(source) as conn:
            high = conn.execute("SELECT max(id) FROM timeline").fetchone()[0]
        assert last.step == Step.RECEIVED
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT min(id) FROM timeline WHERE event_id = %s", (new.id,))
            assert row.fetchone()[0] > high  # type: ignore[index]
    finally:
        pg.close()


def test_a_target_with_rows_is_refused_and_left_as_it_was(source: Path, pg_url: str) -> None:
    pg = open_postgres(pg_url)
    pg.add_workers([worker("already-here")])
    pg.close()
    with pytest.raises(TargetNotEmpty) as caught:
        copy_sqlite_to_postgres(source, pg_url)
    assert caught.value.message.startswith(
        f"PostgreSQL {pg_url} holds Mecha data already (1 row in workers)"
    )
    assert "empty database" in caught.value.message
    assert "createdb" in caught.value.hint
    assert pg_rows(pg_url) == {t.name: int(t.name == "workers") for t in TABLES}


def test_a_running_serve_on_the_source_is_refused(source: Path, pg_url: str) -> None:
    mark = ServeMark(source)
    assert mark.take()
    try:
        with pytest.raises(StoreError) as caught:
            copy_sqlite_to_postgres(source, pg_url)
    finally:
        mark.release()
    assert "mecha serve (pid " in caught.value.message
    assert "stop it first" in caught.value.hint
    assert pg_rows(pg_url) == {}  # not even migrated


def test_a_source_at_an_older_schema_is_refused(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, migrations=MIGRATIONS[:3])
    with pytest.raises(MigrationError) as caught:
        copy_sqlite_to_postgres(path, pg_url)
    assert f"is at schema v3; this mecha copies databases at v{MIGRATIONS[-1].version}" in str(
        caught.value
    )
    assert f"MECHA_DB_PATH={path} mecha db migrate" in caught.value.hint


def test_a_missing_source_is_named(tmp_path: Path, pg_url: str) -> None:
    with pytest.raises(StoreError, match="there is no SQLite database at"):
        copy_sqlite_to_postgres(tmp_path / "nothing.db", pg_url)


def test_a_failure_mid_way_rolls_everything_back(source: Path, pg_url: str) -> None:
    """The target refuses one row of the ledger, the last table: events, tasks and all
    before it were copied in the same transaction, and are gone with it."""
    open_postgres(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE writes ADD CONSTRAINT no_comments CHECK (action <> 'comment')")
    with pytest.raises(StoreError) as caught:
        copy_sqlite_to_postgres(source, pg_url)
    assert "failed and was rolled back, nothing of it is in the target" in caught.value.message
    assert "no_comments" in caught.value.message
    assert pg_rows(pg_url) == {t.name: 0 for t in TABLES}


def test_an_interruption_mid_way_rolls_everything_back(source: Path, pg_url: str) -> None:
    def interrupt(step: Progress) -> None:
        if step.table == "tasks" and step.finished:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_sqlite_to_postgres(source, pg_url, progress=interrupt)
    assert pg_rows(pg_url) == {t.name: 0 for t in TABLES}


def test_counts_that_differ_are_an_error_and_nothing_is_committed(
    source: Path, pg_url: str
) -> None:
    """A trigger of the target's own drops timeline rows silently: the counts tell."""
    open_postgres(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION drop_notes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.step = 'policy' THEN RETURN NULL; END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER drop_notes BEFORE INSERT ON timeline "
            "FOR EACH ROW EXECUTE FUNCTION drop_notes()"
        )
    with pytest.raises(CopyMismatch) as caught:
        copy_sqlite_to_postgres(source, pg_url)
    timeline = next(c for c in caught.value.report.counts if c.table == "timeline")
    assert timeline.target == timeline.source - 1
    assert "timeline" in caught.value.message and "rolled back" in caught.value.message
    assert pg_rows(pg_url) == {t.name: 0 for t in TABLES}


def test_progress_is_reported_every_10000_rows(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "big.db"
    store = open_sqlite(path)
    entries = [TimelineEntry(at=float(n), step=Step.POLICY, detail=f"n{n}") for n in range(25_000)]
    store.add_timeline(entries)
    store.close()
    seen: list[Progress] = []
    report = copy_sqlite_to_postgres(path, pg_url, progress=seen.append)
    steps = [(p.done, p.total, p.finished) for p in seen if p.table == "timeline"]
    assert steps[0] == (0, 25_000, False) and steps[-1] == (25_000, 25_000, True)
    dones = [done for done, _, _ in steps]
    assert {10_000, 20_000} <= set(dones)  # and more often if 2 s pass first
    assert all(later - earlier <= 10_000 for earlier, later in itertools.pairwise(dones))
    assert report.rows == 25_000


def test_every_table_that_holds_data_is_copied_and_in_both_schemas() -> None:
    """The copy takes every SQLite table but its bookkeeping, so PostgreSQL must have each
    one too (a migration that adds a table to one store only breaks the copy)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {t.name for t in TABLES} <= tables
    pg_tables = {
        word.split()[0]
        for m in PG_MIGRATIONS
        for s in m.statements
        if (word := s.partition("CREATE TABLE ")[2])
    }
    assert tables - NOT_COPIED <= pg_tables
