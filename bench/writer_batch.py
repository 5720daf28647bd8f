"""The store writer's cost per batch: ``Pipeline.store`` on a real store, in process.

What each group commit of ``mecha serve``'s webhook path costs on the one writer thread:
16 signed-sized (~22 KB) ``pull_request.opened`` deliveries matched to one worker, each
event stored with its decision and task, one synced commit per batch. No HTTP: this
isolates the engine and the store from the server, so a change to either shows here
without the noise of 32 connections. ``bench/ingest.py`` measures the whole path.

Run: ``.venv/bin/python bench/writer_batch.py`` (``--batches 400 --size 16 --store
sqlite|memory|postgres``). PostgreSQL needs ``--url postgresql://USER@HOST:PORT/DB`` of a
database you may write to (its events stay; each run's delivery ids are new); without
``--url`` nothing is started: the bench says how to get one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mecha.engine.pipeline import Pipeline
from mecha.engine.registry import WorkerRegistry
from mecha.event import Delivery
from mecha.known_secrets import KnownSecrets
from mecha.samples import load
from mecha.store import Store
from mecha.store.redacting import RedactingStore
from mecha.store.sqlite.store import open_sqlite
from mecha.testing.memory_store import MemoryStore
from mecha.worker.files import read_worker, to_record

WORKER = """\
name: bench
endpoint: http://127.0.0.1:9
events:
  - source: github
    on: [pull_request.opened]
    prompt: 'Review {{.title}} #{{.number}}'
"""


NO_URL = """--store postgres needs --url postgresql://USER@HOST:PORT/DATABASE; this bench
starts nothing. A throwaway server (Debian: apt-get install postgresql), as a user not root:
  initdb -D /tmp/mecha-bench --auth=trust -U postgres
  pg_ctl -D /tmp/mecha-bench -l /tmp/mecha-bench.log \\
    -o "-c listen_addresses=127.0.0.1 -p 55432" start
  createdb -h 127.0.0.1 -p 55432 -U postgres mecha_bench
then --url postgresql://postgres@127.0.0.1:55432/mecha_bench
(stop it after: pg_ctl -D /tmp/mecha-bench stop)"""


def _open(kind: str, home: Path, url: str) -> Store:
    if kind == "postgres":
        from mecha.store.postgres.store import open_postgres

        return open_postgres(url)
    return open_sqlite(home / "m.db") if kind == "sqlite" else MemoryStore()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--store", choices=["sqlite", "memory", "postgres"], default="sqlite")
    parser.add_argument("--url", default="", help="the PostgreSQL database (--store postgres)")
    args = parser.parse_args()
    if args.store == "postgres" and not args.url:
        sys.exit(NO_URL)
    run = uuid.uuid4().hex[:8]  # delivery ids of this run: a database used before has others
    with tempfile.TemporaryDirectory() as work:
        home = Path(work)
        inner = _open(args.store, home, args.url)
        known = KnownSecrets()
        store = RedactingStore(inner, known)  # as serve has it
        path = home / "w.yml"
        path.write_text(WORKER)
        parsed, _ = read_worker(path, environ={}, home=home)
        store.add_workers([to_record(parsed, source=path)], replace=True)
        registry = WorkerRegistry(store=store, environ={}, home=home, known=known)
        with ThreadPoolExecutor(1) as writer, ThreadPoolExecutor(1) as reads:
            pipeline = Pipeline(store=store, registry=registry, writer=writer, reads=reads)
            raw = load("github", "pull_request.opened").body
            attrs: dict[str, str | int | bool | None] = {"number": 7, "title": "Add a cache"}
            started = time.perf_counter()
            for batch in range(args.batches):
                pipeline.store([
                    Delivery(
                        source="github", type="pull_request.opened",
                        delivery_id=f"{run}-{batch}-{n}", actor="octocat", subject="o/r#7",
                        attrs=attrs, raw=raw, headers={"x-github-event": "pull_request"},
                    )
                    for n in range(args.size)
                ])  # fmt: skip
            elapsed = time.perf_counter() - started
        tasks = len(store.list_tasks(limit=10**9))  # (a database used before: theirs too)
        store.close()
    events = args.batches * args.size
    print(f"store {args.store}; {args.batches} batches of {args.size}; {len(raw)} bytes each")
    print(
        f"writer thread: {events / elapsed:,.0f} events/s, "
        f"{elapsed * 1000 / args.batches:.2f} ms per batch; {tasks} tasks made"
    )


if __name__ == "__main__":
    main()
