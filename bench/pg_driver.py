"""Which PostgreSQL driver for the store: the same 16 x 22 KB batch, one transaction each.

Inserts ``--batches`` batches of ``--size`` deliveries (the ~22 KB ``pull_request.opened``
sample as the raw body, a few short columns, ``ON CONFLICT (source, delivery_id) DO
NOTHING`` as the store does) into a scratch table, one synced commit per batch, with:

* psycopg 3, ``executemany`` in pipeline mode (what ``PostgresStore`` does);
* psycopg 3, one ``INSERT … SELECT FROM unnest(arrays)`` statement per batch;
* asyncpg ``executemany`` on its own event loop, if asyncpg is installed;
* asyncpg behind a synchronous call (a loop on a thread of its own, each batch handed
  over with ``run_coroutine_threadsafe``), as a synchronous Store would have to use it.

Run: ``.venv/bin/python bench/pg_driver.py --url postgresql://USER@HOST:PORT/DB`` (a
database you may create a table in; the table is dropped at the end). asyncpg is not a
dependency: ``pip install --target /tmp/asyncpg_pkg asyncpg`` and ``PYTHONPATH=/tmp/asyncpg_pkg``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from mecha.samples import load

TABLE = "mecha_pg_driver_bench"
_CREATE = f"""CREATE TABLE {TABLE} (
    id text PRIMARY KEY, source text NOT NULL, delivery_id text NOT NULL, type text NOT NULL,
    attrs text NOT NULL, raw bytea NOT NULL, created_at double precision NOT NULL,
    UNIQUE (source, delivery_id))"""
_INSERT = (
    f"INSERT INTO {TABLE} (id, source, delivery_id, type, attrs, raw, created_at) "  # noqa: S608
    "VALUES ({}) ON CONFLICT (source, delivery_id) DO NOTHING"
)
_UNNEST = (
    f"INSERT INTO {TABLE} (id, source, delivery_id, type, attrs, raw, created_at) "  # noqa: S608
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::bytea[], %s::float8[]) ON CONFLICT (source, delivery_id) DO NOTHING"
)
Row = tuple[str, str, str, str, str, bytes, float]


def batches(count: int, size: int, raw: bytes) -> list[list[Row]]:
    run = uuid.uuid4().hex[:8]
    attrs = '{"number":7,"title":"Add a cache","draft":false}'
    return [
        [(uuid.uuid4().hex, "github", f"{run}-{b}-{n}", "pull_request.opened", attrs, raw,
          time.time()) for n in range(size)]
        for b in range(count)
    ]  # fmt: skip


def psycopg_pipeline(url: str, work: list[list[Row]]) -> None:
    sql = _INSERT.format(", ".join(["%s"] * 5 + ["%b", "%s"]))
    with psycopg.connect(url, autocommit=True) as conn:
        for rows in work:
            with conn.pipeline(), conn.transaction():
                conn.cursor().executemany(sql, rows)


def psycopg_unnest(url: str, work: list[list[Row]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for rows in work:
            columns = [list(column) for column in zip(*rows, strict=True)]
            with conn.transaction():
                conn.execute(_UNNEST, columns)


def _asyncpg_sql() -> str:
    return _INSERT.format(", ".join(f"${n}" for n in range(1, 8)))


async def _asyncpg_run(url: str, work: list[list[Row]]) -> None:
    import asyncpg  # type: ignore[import-not-found,unused-ignore]

    conn = await asyncpg.connect(url)
    try:
        for rows in work:
            async with conn.transaction():
                await conn.executemany(_asyncpg_sql(), rows)
    finally:
        await conn.close()


def asyncpg_native(url: str, work: list[list[Row]]) -> None:
    asyncio.run(_asyncpg_run(url, work))


def asyncpg_from_sync(url: str, work: list[list[Row]]) -> None:
    """Each batch a synchronous call into a loop running on its own thread."""
    import asyncpg

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def one(conn: Any, rows: list[Row]) -> None:
        async with conn.transaction():
            await conn.executemany(_asyncpg_sql(), rows)

    conn = call(asyncpg.connect(url))
    try:
        for rows in work:
            call(one(conn, rows))
    finally:
        call(conn.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def measure(name: str, run: Callable[[str, list[list[Row]]], None], url: str,
            work: list[list[Row]]) -> None:  # fmt: skip
    started = time.perf_counter()
    run(url, work)
    elapsed = time.perf_counter() - started
    events = sum(len(rows) for rows in work)
    print(f"{name:<34} {events / elapsed:8,.0f} events/s {elapsed * 1000 / len(work):7.2f} ms "
          "per batch")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--size", type=int, default=16)
    args = parser.parse_args()
    if not args.url:
        sys.exit("--url postgresql://USER@HOST:PORT/DATABASE is needed; this bench starts "
                 "nothing (bench/writer_batch.py --store postgres: how to get one)")  # fmt: skip
    raw = load("github", "pull_request.opened").body
    print(f"{args.batches} batches of {args.size} x {len(raw)} bytes, one synced commit each")
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(_CREATE)
    try:
        runs: list[tuple[str, Callable[[str, list[list[Row]]], None]]] = [
            ("psycopg, pipelined executemany", psycopg_pipeline),
            ("psycopg, one unnest INSERT", psycopg_unnest),
        ]
        try:
            import asyncpg  # noqa: F401

            runs += [("asyncpg, executemany (async)", asyncpg_native),
                     ("asyncpg, called from sync code", asyncpg_from_sync)]  # fmt: skip
        except ImportError:
            print("asyncpg: not installed (pip install asyncpg to compare)")
        for _ in range(2):  # a second round: warm caches, the table grown
            for name, run in runs:
                measure(name, run, args.url, batches(args.batches, args.size, raw))
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


if __name__ == "__main__":
    main()
