"""What only PostgresStore has: migrations raced by several nodes, a newer schema refused,
connection errors that never show the password, dedupe across connections, unsynced
commits where SQLite's are, NUL in text, bodies compressed on the server."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from mecha.errors import MigrationError, StoreError
from mecha.event import Event, EventState, received
from mecha.store import Arrival, EventOutcome, TaskUpdate, WorkerRecord
from mecha.store.postgres.migrations import LATEST_VERSION, MIGRATIONS, migrate
from mecha.store.postgres.store import PostgresStore, open_postgres
from mecha.task import NewTask, TaskState
from mecha.worker.kind import WorkerKind, WorkerState
from mecha.worker.matching import Decision, Outcome
from tests.integration.store.stores import delivery

SECRET = "Sup3r-Secret-Pw-9c1e"
SHARED = 40  # deliveries every batch holds, each batch in its own order
ROUNDS = 3
PENDING = frozenset({TaskState.PENDING})
RUNNING = frozenset({TaskState.RUNNING})


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStore]:
    store = open_postgres(pg_url)
    yield store
    store.close()


def url_with(pg_url: str, **changes: Any) -> str:
    """``pg_url`` as a URL with a password (the test cluster trusts every one) and changes."""
    parts: dict[str, Any] = {**conninfo.conninfo_to_dict(pg_url), "password": SECRET, **changes}
    return (f"postgresql://{parts['user']}:{parts['password']}@{parts['host']}:{parts['port']}"
            f"/{parts['dbname']}")  # fmt: skip


def sql(pg_url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        cursor = conn.execute(statement.encode(), params)
        return cursor.fetchall() if cursor.description else []


def together(count: int, run: Callable[[int], Any]) -> list[Any]:
    """``run(n)`` on ``count`` threads released at once; each one's result or exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def one(n: int) -> None:
        barrier.wait()
        try:
            results[n] = run(n)
        except BaseException as exc:  # reported by the test
            results[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def shown(exc: BaseException) -> str:
    """Everything a person or a log could see of ``exc``."""
    return "".join(traceback.format_exception(exc)) + str(exc) + repr(exc)


# ---------------------------------------------------------------- migrations


def test_nodes_opening_a_fresh_database_at_once_apply_each_migration_once(pg_url: str) -> None:
    opened = together(8, lambda n: open_postgres(pg_url))
    for result in opened:
        if isinstance(result, PostgresStore):
            result.close()
    assert [r for r in opened if not isinstance(r, PostgresStore)] == []
    applied = sql(pg_url, "SELECT version, count(*) FROM schema_migrations GROUP BY version "
                          "ORDER BY version")  # fmt: skip
    assert applied == [(m.version, 1) for m in MIGRATIONS]


def test_a_gap_in_the_numbers_is_migrated_over(pg_url: str) -> None:
    """A database at 7 takes the budgets step (9) though no step 8 is in the list."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert migrate(conn, migrations=tuple(m for m in MIGRATIONS if m.version <= 7)) == 7
        assert migrate(conn) == LATEST_VERSION
    applied = sql(pg_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert applied == [(m.version,) for m in MIGRATIONS]
    assert sql(pg_url, "SELECT count(*) FROM budget_ledger") == [(0,)]


def test_a_database_newer_than_this_mecha_is_refused(pg_url: str) -> None:
    open_postgres(pg_url).close()
    newer = LATEST_VERSION + 1
    sql(pg_url, "INSERT INTO schema_migrations VALUES (%s, 'from the future', 0)", (newer,))
    with pytest.raises(MigrationError) as caught:
        open_postgres(pg_url)
    assert (f"the database is at schema version {newer}, but this mecha knows versions up to "
            f"{LATEST_VERSION} only") in caught.value.message  # fmt: skip
    assert "upgrade mecha" in caught.value.hint and "MECHA_DATABASE_URL" in caught.value.hint
    as_it_is = open_postgres(pg_url, migrate=False)  # to tell what it is, not to use it
    try:
        assert as_it_is.schema_version() == newer
    finally:
        as_it_is.close()


def test_a_database_holding_other_tables_is_not_taken_over(pg_url: str) -> None:
    sql(pg_url, "CREATE TABLE customers (id integer)")
    with pytest.raises(MigrationError, match=r"holds tables \(customers\).*not a Mecha database"):
        open_postgres(pg_url)
    assert sql(pg_url, "SELECT to_regclass('workers') IS NULL") == [(True,)]


# ---------------------------------------------------------------- connecting, the password


def test_a_user_the_server_refuses_is_told_without_the_password(pg_url: str) -> None:
    role = f"mecha_refused_{uuid.uuid4().hex[:8]}"
    sql(pg_url, f'CREATE ROLE "{role}" NOLOGIN')
    try:
        with pytest.raises(StoreError) as caught:
            open_postgres(url_with(pg_url, user=role))
    finally:
        sql(pg_url, f'DROP ROLE "{role}"')
    assert f'refused user "{role}"' in caught.value.message
    assert "password" in caught.value.hint
    assert SECRET not in shown(caught.value)


def test_an_unreachable_server_is_named_by_host_and_port_only(pg_url: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    with pytest.raises(StoreError) as caught:
        open_postgres(url_with(pg_url, host="127.0.0.1", port=port))
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}" in caught.value.message
    assert "MECHA_DATABASE_URL" in caught.value.hint
    assert SECRET not in shown(caught.value)


def test_a_missing_database_says_how_to_make_it(pg_url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_postgres(url_with(pg_url, dbname="mecha_no_such_db"))
    assert 'the database "mecha_no_such_db" does not exist' in caught.value.message
    assert "createdb mecha_no_such_db" in caught.value.hint
    assert SECRET not in shown(caught.value)


def test_the_password_is_in_no_repr(pg_url: str) -> None:
    store = open_postgres(url_with(pg_url))
    try:
        assert SECRET not in repr(store) + str(store.server) + repr(store.server)
        host, port = (
            conninfo.conninfo_to_dict(pg_url)["host"],
            conninfo.conninfo_to_dict(pg_url)["port"],
        )
        assert f"{host}:{port}" in repr(store)
    finally:
        store.close()
    with pytest.raises(StoreError, match="closed") as caught:
        store.count_workers()
    assert SECRET not in shown(caught.value)


# ---------------------------------------------------------------- several connections


def decided(event: Event, *workers: str) -> EventOutcome:
    return EventOutcome(
        event_id=event.id, state=EventState.MATCHED,
        decisions=[Decision(worker=w, outcome=Outcome.MATCHED, rule=0) for w in workers],
        tasks=[NewTask(worker=w, event_id=event.id, prompt="p") for w in workers],
    )  # fmt: skip


def test_one_delivery_sent_to_many_nodes_at_once_is_stored_once(pg: PostgresStore) -> None:
    url = pg.server.conninfo
    nodes = [open_postgres(url, max_connections=10) for _ in range(5)]
    try:

        def send(n: int) -> list[Any] | None:
            event = received(delivery("same"), now=float(n))
            arrival = Arrival(event=event, outcome=decided(event, "w"))
            [made] = nodes[n % len(nodes)].insert_arrivals([arrival])
            return made

        results = together(50, send)
    finally:
        for node in nodes:
            node.close()
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sum(1 for r in results if r is not None) == 1
    [event] = pg.list_events()
    assert len(pg.list_tasks()) == 1 and len(pg.list_matches(event.id)) == 1
    assert [e.step for e in pg.list_timeline(event_id=event.id)] == ["received", "matched"]


def test_overlapping_batches_from_many_connections_neither_deadlock_nor_repeat(
    pg: PostgresStore,
) -> None:
    nodes = [open_postgres(pg.server.conninfo, max_connections=8) for _ in range(4)]
    results: list[Any] = []
    try:
        for round_ in range(ROUNDS):

            def send(n: int, round_: int = round_) -> list[list[Any] | None]:
                names = [f"{round_}-shared-{k}" for k in range(SHARED)] + [f"{round_}-own-{n}"]
                random.Random(n).shuffle(names)  # noqa: S311 - an order, not a secret
                arrivals = [Arrival(event=received(delivery(name), now=1.0)) for name in names]
                return nodes[n % len(nodes)].insert_arrivals(arrivals)

            results.extend(together(32, send))
    finally:
        for node in nodes:
            node.close()
    assert [r for r in results if isinstance(r, BaseException)] == []
    stored = [e.delivery_id for e in pg.list_events(limit=10_000)]
    assert len(stored) == len(set(stored)) == ROUNDS * (SHARED + 32)
    assert sum(1 for batch in results for made in batch if made is not None) == len(stored)


def test_the_last_two_tasks_finished_at_once_finish_their_event(pg: PostgresStore) -> None:
    events = []
    for n in range(20):
        event = received(delivery(f"d-{n}"), now=1.0)
        [tasks] = pg.insert_arrivals([Arrival(event=event, outcome=decided(event, "a", "b"))])
        assert tasks is not None
        pg.update_tasks([TaskUpdate(task_id=t.id, state=TaskState.RUNNING, only_from=PENDING)
                         for t in tasks])  # fmt: skip
        events.append((event.id, tasks))
    for _, tasks in events:
        together(2, lambda n, tasks=tasks: pg.update_tasks([TaskUpdate(  # type: ignore[misc]
            task_id=tasks[n].id, state=TaskState.COMPLETED, only_from=RUNNING)]))  # fmt: skip
    states = {pg.get_event(event_id).state for event_id, _ in events}
    assert states == {EventState.COMPLETED}


# ---------------------------------------------------------------- what is kept, and how


def test_task_progress_commits_unsynced_and_events_synced(pg_url: str) -> None:
    # the test cluster runs unsynced; this database is synced by default, as servers are
    name = conninfo.conninfo_to_dict(pg_url)["dbname"]
    sql(pg_url, f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    with contextlib.closing(open_postgres(pg_url)) as pg:
        _check_commits(pg)


def _check_commits(pg: PostgresStore) -> None:
    def setting(synced: bool) -> str:
        with pg._write("looking", synced=synced) as conn:
            row = conn.execute("SHOW synchronous_commit").fetchone()
        assert row is not None
        return str(row[0])

    assert (setting(False), setting(True), setting(False)) == ("off", "on", "off")
    asked: list[bool] = []
    real = pg._write

    def spy(doing: str, *, synced: bool = True):  # type: ignore[no-untyped-def]
        asked.append(synced)
        return real(doing, synced=synced)

    pg._write = spy  # type: ignore[method-assign]
    pg.insert_events([delivery()])
    [task] = pg.create_tasks([NewTask(worker="w", event_id="", prompt="p")])
    pg.update_tasks([TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING)])
    pg.set_task_tokens([(task.id, 3)])
    assert asked == [True, True, False, False]


def test_large_bodies_are_compressed_on_the_server_and_read_back_exactly(
    pg: PostgresStore,
) -> None:
    raw = b'{"body": "' + b"review me " * 3000 + b'"}'
    [event] = pg.insert_events([delivery(raw=raw)])
    assert event is not None
    [(blob, encoding)] = sql(pg.server.conninfo, "SELECT raw, raw_encoding FROM events")
    assert encoding == "zlib" and len(blob) < len(raw) / 5 and zlib.decompress(blob) == raw
    assert pg.get_event(event.id).raw == raw


def test_attributes_keep_their_order_and_text_keeps_working_with_nul(pg: PostgresStore) -> None:
    event = received(delivery(), now=1.0)
    attrs = {"zeta": 1, "alpha": {"b": 2, "a": "x\x00y"}, "mid": [True, None]}
    event = Event(**{**{f: getattr(event, f) for f in event.__dataclass_fields__},
                     "attrs": attrs, "actor": "mo\x00na"})  # fmt: skip
    pg.insert_arrivals([Arrival(event=event)])
    stored = pg.get_event(event.id)
    assert list(stored.attrs) == ["zeta", "alpha", "mid"] and stored.attrs == attrs
    assert stored.actor == "mo\ufffdna"  # PostgreSQL text holds no NUL: U+FFFD instead
    [task] = pg.create_tasks([NewTask(worker="w", event_id="", prompt="a\x00b")])
    assert pg.get_task(task.id).prompt == "a\ufffdb"
    brief = pg.get_event_brief(event.id, keys=["alpha"])
    assert brief is not None and brief.attrs == {"alpha": attrs["alpha"]}


def test_a_row_held_by_another_connection_fails_the_call_after_the_lock_timeout(
    pg_url: str,
) -> None:
    with contextlib.closing(open_postgres(pg_url, lock_timeout=0.2)) as store:
        store.add_workers([WorkerRecord(name="w", kind=WorkerKind.UNMANAGED)])
        failed: list[BaseException] = []

        def change() -> None:
            try:
                store.set_worker_state("w", WorkerState.ONLINE)
            except StoreError as exc:
                failed.append(exc)

        with psycopg.connect(pg_url) as other:  # holds the row until it rolls back
            other.execute("SELECT 1 FROM workers WHERE name = 'w' FOR UPDATE")
            waiting = threading.Thread(target=change)
            waiting.start()
            waiting.join(5)
            hung = waiting.is_alive()
            other.rollback()  # (lets a call without a lock timeout go on)
        waiting.join()
        assert not hung, "the call waited for the lock longer than 5 s"
        [error] = failed
        assert "stayed locked longer than the lock timeout" in str(error)
        assert store.set_worker_state("w", WorkerState.ONLINE).state is WorkerState.ONLINE


def test_reclaim_vacuums_and_reports_the_databases_size(pg: PostgresStore) -> None:
    pg.insert_events([delivery(f"d-{n}") for n in range(50)])
    before = pg.disk_usage()
    assert before.database > 0 and before.wal == 0 and before.free == 0
    after = pg.reclaim()
    assert after.database > 0 and (after.wal, after.free) == (0, 0)


def test_a_call_that_finds_no_free_connection_says_so(pg_url: str) -> None:
    with contextlib.closing(open_postgres(pg_url, max_connections=1)) as store:
        store._pool.timeout = 0.2  # type: ignore[union-attr]
        busy = pytest.raises(StoreError, match=r"no connection to PostgreSQL at \S+ came free")
        with store._use("holding the only connection"), busy:
            store.count_workers()
        assert store.count_workers() == 0
