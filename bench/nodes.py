"""Several `mecha serve` nodes on one PostgreSQL, against one node on SQLite, in one run.

For each configuration (SQLite with 1 node; PostgreSQL with 1, 2 and 3 nodes):

1. Latency: paces ``--rate`` (100) signed ``pull_request.opened`` deliveries a second for
   ``--duration`` (10) seconds, round-robin over the nodes; each carries its own PR
   number, which the instant worker sees in its prompt, so every ``POST /task`` is matched
   to the moment its webhook request was written. Reports p50/p99 of that gap.
2. Throughput: sends ``--events`` (3,000) deliveries over 32 keep-alive connections
   spread over the nodes and waits until every task is completed in the database;
   reports events/s end to end.
3. CPU: seconds of CPU each process used during both phases (each serve node, the
   PostgreSQL server's processes together, this process: the load generator and the
   instant worker), and events per CPU-second.

PostgreSQL is a throwaway cluster with its default durability (fsync on), started by
``mecha.testing.postgres_cluster``. Run: ``.venv/bin/python bench/nodes.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatch import NUMBER, SAMPLE, SECRET, Client, body_for, percentile
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.postgres_cluster import PostgresCluster
from mecha.testing.serve_process import ServeProcess

TICKS = os.sysconf("SC_CLK_TCK")
CONFIG = "dispatch:\n  concurrency: 64\n"


@dataclass
class Result:
    """One configuration's figures."""

    name: str
    nodes: int
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    events_per_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far."""
    return _stat_seconds(pid, children=False)


def postgres_cpu(folder: Path) -> float:
    """CPU seconds of the whole cluster so far: the postmaster, the backends it has reaped
    (its cutime and cstime) and the processes still running under it."""
    postmaster = int((folder / "data" / "postmaster.pid").read_text().split()[0])
    total = _stat_seconds(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent(int(entry.name)) == postmaster:
            total += _stat_seconds(int(entry.name), children=False)
    return total


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _parent(pid: int) -> int:
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, IndexError, ValueError):
        return -1


def _stat_seconds(pid: int, *, children: bool) -> float:
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def make_home(work: Path, name: str, endpoint: str, env: dict[str, str], add: bool) -> Path:
    home = work / name
    home.mkdir(mode=0o700)
    secrets = home / "secrets.yml"
    secrets.write_text(f"github:\n  webhook_secret: {SECRET}\n")
    secrets.chmod(0o600)
    (home / "config.yml").write_text(CONFIG)
    if add:
        path = work / "bench.yml"
        path.write_text(
            f"name: bench\nendpoint: {endpoint}\nconcurrency: 64\n"
            "rate_limit: {per_second: 0}\nevents:\n  - source: github\n"
            "    on: [pull_request.opened]\n    prompt: 'Review #{{.number}}'\n"
        )
        full = {**os.environ, **env, "MECHA_HOME": str(home)}
        for args in (["worker", "add", str(path)], ["worker", "start", "bench"]):
            subprocess.run([sys.executable, "-m", "mecha", *args], env=full, check=True,
                           capture_output=True)  # fmt: skip
    return home


def completed(database: str) -> int:
    """Tasks completed so far, from a SQLite path or a PostgreSQL URL."""
    query = "SELECT count(*) FROM tasks WHERE state = 'completed'"
    if database.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(database) as conn:
            row = conn.execute(query).fetchone()
    else:
        with sqlite3.connect(database) as conn:
            row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


async def paced(
    urls: list[str], template: dict[str, Any], rate: int, seconds: int
) -> dict[int, float]:
    """Deliveries numbered 1..rate*seconds at ``rate``/s over the nodes; number → sent at."""
    clients = [Client(url, 8) for url in urls]
    for client in clients:
        await client.open()
    total = rate * seconds
    bodies = [body_for(template, n) for n in range(1, total + 1)]
    sent: dict[int, float] = {}
    start = time.perf_counter() + 0.1

    async def one(number: int) -> None:
        await asyncio.sleep(max(0.0, start + (number - 1) / rate - time.perf_counter()))
        body, sig = bodies[number - 1]
        client = clients[number % len(clients)]
        sent[number] = await client.post(body, sig, f"paced-{start}-{number}")

    await asyncio.gather(*(one(n) for n in range(1, total + 1)))
    for client in clients:
        client.close()
    return sent


async def flood(urls: list[str], template: dict[str, Any], first: int, count: int) -> float:
    """``count`` deliveries over 32 connections spread over the nodes; when the first went."""
    per = max(1, 32 // len(urls))
    clients = [Client(url, per) for url in urls]
    for client in clients:
        await client.open()
    bodies = [body_for(template, n) for n in range(first, first + count)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    began = time.time()

    async def lane(client: Client) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            body, sig = bodies[index]
            await client.post(body, sig, f"flood-{first + index}")

    await asyncio.gather(*(lane(c) for c in clients for _ in range(per)))
    for client in clients:
        client.close()
    return began


def run(name: str, nodes: int, database: str, args: argparse.Namespace,
        pg_folder: Path | None) -> Result:  # fmt: skip
    template: dict[str, Any] = json.loads(SAMPLE.read_text())
    work = Path(tempfile.mkdtemp(prefix="mecha-bench-nodes-"))
    result = Result(name=name, nodes=nodes)
    env = {"MECHA_LOG_LEVEL": "WARNING"}
    if database.startswith("postgresql://"):
        env["MECHA_DATABASE_URL"] = database
    with InstantWorker() as worker:
        homes = [make_home(work, f"node{n}", worker.url, env, add=n == 0) for n in range(nodes)]
        if not database.startswith("postgresql://"):
            database = str(homes[0] / "mecha.db")
        servers = [ServeProcess(home, env=env) for home in homes]
        try:
            urls = [server.url for server in servers]
            pids = {f"serve node {n + 1}": s.pid for n, s in enumerate(servers)}
            before = {label: cpu_seconds(pid) for label, pid in pids.items()}
            pg_before = postgres_cpu(pg_folder) if pg_folder else 0.0
            me_before = sum(os.times()[:2])
            sent = asyncio.run(paced(urls, template, args.rate, args.duration))
            worker.wait_for(len(sent), timeout=120)
            gaps = []
            for received in worker.requests:
                match = NUMBER.search(received.prompt)
                if match and int(match[1]) in sent:
                    gaps.append(received.received_at - sent[int(match[1])])
            result.p50_ms = percentile(gaps, 0.5) * 1000
            result.p99_ms = percentile(gaps, 0.99) * 1000
            done_before = completed(database)
            began = asyncio.run(flood(urls, template, 1_000_000, args.events))
            deadline = time.monotonic() + 300
            while completed(database) < done_before + args.events:
                if time.monotonic() > deadline:
                    sys.exit(f"{name}: tasks did not all complete within 300 s")
                time.sleep(0.05)
            result.events_per_s = args.events / (time.time() - began)
            result.cpu = {label: cpu_seconds(pid) - before[label] for label, pid in pids.items()}
            if pg_folder:
                result.cpu["postgres (all)"] = postgres_cpu(pg_folder) - pg_before
            result.cpu["load + worker"] = sum(os.times()[:2]) - me_before
        finally:
            for server in servers:
                server.stop()
    shutil.rmtree(work, ignore_errors=True)
    return result


def report(results: list[Result], events: int, paced_total: int) -> None:
    print(f"{os.cpu_count()} cores; {paced_total} paced + {events} flooded events each")
    head = ("configuration", "events/s", "p50 ms", "p99 ms", "CPU s", "events/CPU-s")
    print(f"{head[0]:28} {head[1]:>9} {head[2]:>8} {head[3]:>8} {head[4]:>7} {head[5]:>13}")
    for r in results:
        cpu = sum(r.cpu.values())
        print(
            f"{r.name:28} {r.events_per_s:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {cpu:7.1f} "
            f"{(events + paced_total) / cpu:13.0f}"
        )
        print("    " + ", ".join(f"{label} {seconds:.1f}" for label, seconds in r.cpu.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--nodes", type=int, nargs="*", default=[1, 2, 3])
    args = parser.parse_args()
    results = [run("SQLite, 1 node", 1, "sqlite", args, None)]
    cluster = PostgresCluster(durable=True)
    why = cluster.start()
    if why:
        sys.exit(f"PostgreSQL: {why}")
    try:
        import psycopg

        for count in args.nodes:
            name = f"bench_{count}"
            with psycopg.connect(cluster.url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"'.encode())
            url = cluster.url.rsplit("/", 1)[0] + f"/{name}"
            label = f"PostgreSQL, {count} node{'s' if count > 1 else ''}"
            results.append(run(label, count, url, args, cluster.folder))
    finally:
        cluster.remove()
    report(results, args.events, args.rate * args.duration)


if __name__ == "__main__":
    main()
