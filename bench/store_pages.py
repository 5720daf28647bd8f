"""The dashboard's store reads on 100,000 events: each call's time, and its query plan.

Fills a SQLite file (and a throwaway PostgreSQL cluster, ``mecha.testing.postgres_cluster``,
when one can be started; ``--no-postgres`` skips it) with ``--events`` (100,000) events
over 30 days: four workers decide about each, one or two take it (about 150,000 tasks,
400,000 decisions), most tasks completed long ago, some failed, the last hour's pending
or running; 5,000 writes, a tenth of them failed or dead-lettered. The events go in
through ``Store.insert_arrivals`` in batches of 1,000 (the store's own code); the tasks'
later states are set by a few UPDATE statements (the same SQL on both).

Then it times (median and worst of ``--runs``, 15) the first page of events, a page
50,000 rows deep (the keyset cursor), each filter, searches (frequent text, text found
nowhere: every row read, an id prefix), ``worker_figures`` over a day, ``recent_changes``
of the last seconds, task pages and failed writes; and prints SQLite's ``EXPLAIN QUERY
PLAN`` (PostgreSQL's ``EXPLAIN``) of each page's statement. Target: the whole events page
under 300 ms; the store call well under 50 ms.

Run: ``.venv/bin/python bench/store_pages.py`` (``--events 100000 --runs 15``).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from mecha.event import Delivery, EventState, received
from mecha.policy.writes import Place, Write, WriteState, ledger_key
from mecha.store import Arrival, EventOutcome, EventQuery, Store, WritePlan, WriteUpdate
from mecha.store.pages_sql import page_sql
from mecha.store.sqlite.store import open_sqlite
from mecha.task import NewTask, TaskState
from mecha.worker.matching import Decision, Outcome

DAY = 86_400.0
WORKERS = ("review", "lint", "triage", "docs")
REPOS = [f"octo/repo-{n}" for n in range(50)]
TYPES = ("pull_request.opened", "pull_request.synchronize", "issue_comment.created", "push")
WORDS = ("fix", "add", "remove", "refactor", "bump", "docs", "test", "speed up", "clean")
BATCH = 1000


def fill(store: Store, count: int, now: float) -> None:
    """``count`` events over the last 30 days, decided and with tasks; writes of some."""
    rng = random.Random(18)
    start = now - 30 * DAY
    step = 30 * DAY / count
    tasks_for_writes: list[tuple[str, str]] = []
    for first in range(0, count, BATCH):
        arrivals = []
        for n in range(first, min(first + BATCH, count)):
            at = start + n * step
            at -= at % 1.0 if n % 7 == 0 else 0.0  # whole seconds now and then: ties
            source = "gitlab" if n % 5 == 0 else "github"
            delivery = Delivery(
                source=source, type=TYPES[n % len(TYPES)], delivery_id=uuid.uuid4().hex,
                actor=f"user{n % 300}", subject=REPOS[n % len(REPOS)],
                attrs={"number": n % 4000 + 1, "head_sha": uuid.uuid4().hex[:12],
                       "title": f"{rng.choice(WORDS)} {rng.choice(WORDS)} #{n}",
                       "draft": False, "body": "text " * 40},
                raw=b'{"action": "opened"}' + b" " * 2000, headers={"x-github-event": "x"},
            )  # fmt: skip
            event = received(delivery, now=at)
            taken = [WORKERS[n % 2], *(["triage"] if n % 3 == 0 else [])]
            decisions = [
                Decision(worker=w, outcome=Outcome.MATCHED if w in taken else Outcome.NOT_MATCHED,
                         rule=0 if w in taken else -1, reason="rule 1" if w in taken else "no")
                for w in WORKERS
            ]  # fmt: skip
            outcome = EventOutcome(
                event_id=event.id, state=EventState.MATCHED, decisions=decisions,
                tasks=[NewTask(worker=w, event_id=event.id, prompt=f"Review #{n}") for w in taken],
            )  # fmt: skip
            arrivals.append(Arrival(event=event, outcome=outcome))
        for arrival, made in zip(arrivals, store.insert_arrivals(arrivals), strict=True):
            if made and len(tasks_for_writes) < 5000 and rng.random() < 0.06:
                tasks_for_writes.append((made[0].id, arrival.event.id))
    _writes(store, tasks_for_writes)


def _writes(store: Store, tasks: list[tuple[str, str]]) -> None:
    place = Place(forge="github", repo="octo/repo-1", number=7, head_sha="abc")
    plans = []
    for task_id, event_id in tasks:
        key = ledger_key(event_id=event_id, worker="review", action="comment",
                         target=place.name, head_sha=place.head_sha)  # fmt: skip
        write = Write(key=key, worker="review", action="comment", place=place, body="looks good")
        plans.append(WritePlan(task_id=task_id, event_id=event_id, writes=[write]))
    records = [r for made in store.plan_writes(plans) for r in made]
    opened = frozenset({WriteState.PLANNED, WriteState.CALLING})
    ends = [WriteUpdate(key=r.key, state=WriteState.FAILED if n % 20 else WriteState.DEAD,
                        only_from=opened, detail="HTTP 502 from the forge")
            for n, r in enumerate(records) if n % 10 == 0]  # fmt: skip
    store.update_writes(ends)
    store.update_writes([WriteUpdate(key=r.key, state=WriteState.DONE, only_from=opened)
                         for n, r in enumerate(records) if n % 10])  # fmt: skip


def later_states(execute: Callable[[str, tuple[Any, ...]], object], mark: str, now: float) -> None:
    """Most tasks completed (a minute after arriving), one in eight of lint's failed, the
    last hour's pending or running; the events follow. (``mark``: ``?`` or ``%s``.)"""
    hour = now - 3600
    for sql, params in (
        ("UPDATE tasks SET state = 'completed', attempts = 1, dispatched_at = created_at + 1, "
         "finished_at = created_at + 20 + length(prompt), "
         "updated_at = created_at + 20 + length(prompt) WHERE created_at < ?", (hour,)),
        ("UPDATE tasks SET state = 'failed', error = 'worker answered 500 (attempt 3 of 3)' "
         "WHERE worker = 'lint' AND substr(id, 1, 1) IN ('a', 'b') AND created_at < ?", (hour,)),
        ("UPDATE tasks SET state = 'running', dispatched_at = ? "
         "WHERE created_at >= ? AND substr(id, 1, 1) IN ('0', '1', '2', '3')", (now, hour)),
        ("UPDATE events SET state = 'completed', updated_at = created_at + 40 "
         "WHERE created_at < ?", (hour,)),
    ):  # fmt: skip
        execute(sql.replace("?", mark), params)


def timed(call: Callable[[], Any], runs: int) -> tuple[float, float, int]:
    """Median and worst milliseconds of ``runs`` calls (after one warm-up), and the rows."""
    result = call()
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        call()
        times.append((time.perf_counter() - begin) * 1000)
    rows = len(result[0]) + len(result[1]) if isinstance(result, tuple) else len(result)
    return statistics.median(times), max(times), rows


def cases(store: Store, deep: tuple[float, str], now: float) -> list[tuple[str, Any]]:
    """(label, EventQuery or a callable) of everything timed."""
    day = now - 15 * DAY
    return [
        ("events: first page", EventQuery()),
        ("events: page 50,000 rows deep", EventQuery(before=deep)),
        ("events: state=failed (rare)", EventQuery(state=EventState.FAILED)),
        ("events: state=completed", EventQuery(state=EventState.COMPLETED)),
        ("events: source=gitlab", EventQuery(source="gitlab")),
        ("events: repo=octo/repo-7", EventQuery(repo="octo/repo-7")),
        ("events: worker=triage", EventQuery(worker="triage")),
        ("events: worker=docs (no tasks)", EventQuery(worker="docs")),
        ("events: one day, 15 days ago", EventQuery(since=day, until=day + DAY)),
        ("events: worker+repo+deep", EventQuery(worker="review", repo="octo/repo-8", before=deep)),
        ("events: search 'refactor' (frequent)", EventQuery(search="refactor")),
        ("events: search 'user42'", EventQuery(search="USER42")),
        ("events: search found nowhere", EventQuery(search="no-such-text")),
        ("events: search 100%_ (literal)", EventQuery(search="100%_")),
        ("worker_figures (since a day)", lambda: store.worker_figures(since=now - DAY)),
        ("recent_changes (last 5 s)", lambda: store.recent_changes(after=time.time() - 5)),
        ("recent_changes (last hour)", lambda: store.recent_changes(after=now - 3600)),
        ("tasks: first page", lambda: store.list_tasks(limit=50)),
        ("tasks: deep page", lambda: store.list_tasks(limit=50, before=deep)),
        ("tasks: state=failed", lambda: store.list_tasks(state=TaskState.FAILED, limit=50)),
        ("failed_writes: first page", lambda: store.failed_writes(limit=50)),
    ]


def run(label: str, store: Store, raw: Callable[[str, tuple[Any, ...]], list[Any]], *,
        mark: str, explain: str, args: argparse.Namespace) -> None:  # fmt: skip
    """Fill ``store``, then time and explain every case."""
    now = time.time()
    begin = time.perf_counter()
    fill(store, args.events, now)
    later_states(raw, mark, now)
    filled = time.perf_counter() - begin
    middle = "SELECT created_at, id FROM events ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?"
    [deep] = raw(middle.replace("?", mark), (args.events // 2,))
    deep = (float(deep[0]), str(deep[1]))
    print(f"\n== {label}: {args.events:,} events filled in {filled:.0f} s")
    print(f"{'call':44} {'median ms':>10} {'worst ms':>9} {'rows':>6}")
    plans = []
    for name, case in cases(store, deep, now):
        if isinstance(case, EventQuery):
            query = case
            call: Callable[[], Any] = partial(store.event_page, query)
            sql, params = page_sql(query, mark)
            plan = raw(f"{explain} {sql}", tuple(params))
            plans.append((name, [" ".join(str(c) for c in row[-1:]) for row in plan]))
        else:
            call = case
        median, worst, rows = timed(call, args.runs)
        print(f"{name:44} {median:10.1f} {worst:9.1f} {rows:6}")
    if args.plans:
        for name, lines in plans:
            print(f"-- {name}")
            for line in lines:
                print(f"     {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--plans", action="store_true", help="print each page's query plan")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "pages.db"
        store = open_sqlite(path)
        conn = sqlite3.connect(path, isolation_level=None)

        def sqlite_raw(sql: str, params: tuple[Any, ...]) -> list[Any]:
            return conn.execute(sql, params).fetchall()

        try:
            run("SQLite", store, sqlite_raw, mark="?", explain="EXPLAIN QUERY PLAN", args=args)
        finally:
            conn.close()
            store.close()
    if not args.no_postgres:
        _postgres(args)


def _postgres(args: argparse.Namespace) -> None:
    import psycopg

    from mecha.store.postgres.store import open_postgres
    from mecha.testing.postgres_cluster import PostgresCluster

    cluster = PostgresCluster(durable=True)
    why = cluster.start()
    if why:
        print(f"\nPostgreSQL skipped: {why}", file=sys.stderr)
        return
    try:
        store = open_postgres(cluster.url)
        with psycopg.connect(cluster.url, autocommit=True) as conn:

            def pg_raw(sql: str, params: tuple[Any, ...]) -> list[Any]:
                cursor = conn.execute(sql.encode(), params)
                return cursor.fetchall() if cursor.description else []

            try:
                run("PostgreSQL", store, _analysed(pg_raw), mark="%s", explain="EXPLAIN", args=args)
            finally:
                store.close()
    finally:
        cluster.remove()


def _analysed(raw: Callable[[str, tuple[Any, ...]], list[Any]]) -> Callable[..., list[Any]]:
    """``raw``, with the tables analysed once the bench first reads them (as autovacuum
    would have done by then on a server that filled them over a month)."""
    done = False

    def call(sql: str, params: tuple[Any, ...]) -> list[Any]:
        nonlocal done
        if not done and sql.startswith("SELECT"):
            raw("ANALYZE", ())
            done = True
        return raw(sql, params)

    return call


if __name__ == "__main__":
    main()
