"""Soak: 10,000 events, each answered with a 1 MB result, against a real `mecha serve`.

Signed ``pull_request.opened`` deliveries are paced at ``--rate`` a second; an instant
worker (``mecha.testing.instant_worker``, in this process) answers every task at once with
an ``output`` of ``--result-bytes`` (1 MB), which the store caps at ``max_result`` and
which, with no forge token, also becomes a dry-run comment write (recorded as the 65,536
characters GitHub would be sent). ``config.yml`` keeps everything ``--keep`` (10 s) and
prunes every ``--interval`` (2 s): short, so that pruning matters within the run.

Every 1,000 events sent it prints the database's and write-ahead log's sizes, the largest
log seen since (sampled every 0.1 s), and the rows left; at the end the same once the last
task is completed, once the last rows are past their retention, and after serve stops.
With ``--keep off`` nothing is pruned: the baseline.

Run: ``.venv/bin/python bench/soak.py`` (``--events 10000 --rate 15``: on 2 cores serve
completes about 16 such tasks a second, so this paces just under that; ~12 minutes).
Pass: the database's size stops growing once rows leave as fast as they come.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess

SECRET = "soak-webhook-secret"  # noqa: S105 - a benchmark's own secret
REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "src" / "mecha" / "samples" / "github" / "pull_request.opened.json"
MB = 1_000_000


def make_home(work: Path, endpoint: str, keep: str, interval: str) -> Path:
    home = work / "home"
    home.mkdir(mode=0o700)
    secrets = home / "secrets.yml"
    secrets.write_text(f"github:\n  webhook_secret: {SECRET}\n")
    secrets.chmod(0o600)
    retention = "off" if keep == "off" else (
        f"\n  events: {keep}\n  tasks: {keep}\n  timeline: {keep}\n  writes: {keep}\n"
        f"  interval: {interval}"
    )  # fmt: skip
    (home / "config.yml").write_text(f"dispatch:\n  concurrency: 32\nretention: {retention}\n")
    path = work / "soak.yml"
    path.write_text(
        f"name: soak\nendpoint: {endpoint}\nconcurrency: 32\nrate_limit: {{per_second: 0}}\n"
        "events:\n  - source: github\n    on: [pull_request.opened]\n"
        "    prompt: 'Review #{{.number}}'\n"
    )
    env = {**os.environ, "MECHA_HOME": str(home)}
    for args in (["worker", "add", str(path)], ["worker", "start", "soak"]):
        subprocess.run([sys.executable, "-m", "mecha", *args], env=env, check=True,
                       capture_output=True)  # fmt: skip
    return home


def signed(template: dict[str, Any], number: int) -> tuple[bytes, dict[str, str]]:
    template["number"] = number
    template["pull_request"]["number"] = number
    body = json.dumps(template).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
        "X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": f"soak-{number}",
    }  # fmt: skip
    return body, headers


class Sizes:
    """The database's and its log's sizes, sampled on a thread; the largest log seen."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.wal = db.with_name(db.name + "-wal")
        self.max_wal = 0
        self.max_db = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def now(self) -> tuple[int, int]:
        return _size(self.db), _size(self.wal)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            db, wal = self.now()
            self.max_db, self.max_wal = max(self.max_db, db), max(self.max_wal, wal)

    def take_max_wal(self) -> int:
        seen, self.max_wal = self.max_wal, _size(self.wal)
        return seen

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def rows(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        found = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                 for t in ("events", "tasks", "timeline", "writes")}  # fmt: skip
        found["completed"] = conn.execute(
            "SELECT count(*) FROM tasks WHERE state = 'completed'"
        ).fetchone()[0]
        return found
    finally:
        conn.close()


def line(label: str, sizes: Sizes, db: Path, started: float) -> str:
    size, wal = sizes.now()
    left = rows(db)
    return (
        f"{label:>14} {time.monotonic() - started:7.1f} s  database {size / MB:8.1f} MB  "
        f"WAL {wal / MB:6.1f} MB (max {sizes.take_max_wal() / MB:6.1f})  rows: "
        f"{left['events']:>6} events {left['tasks']:>6} tasks {left['writes']:>6} writes "
        f"{left['timeline']:>6} timeline"
    )


async def send_all(
    url: str, count: int, rate: float, report: Any, waits: list[float] | None = None
) -> int:
    """``count`` deliveries paced at ``rate``/s over 16 connections; how many were 202.
    Each answer's wait (seconds from sending) goes to ``waits``."""
    template: dict[str, Any] = json.loads(SAMPLE.read_text())
    accepted = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(1, count + 1):
        queue.put_nowait(number)
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def lane() -> None:
            nonlocal accepted
            while not queue.empty():
                number = queue.get_nowait()
                await asyncio.sleep(max(0.0, start + (number - 1) / rate - time.perf_counter()))
                body, headers = signed(template, number)
                sent = time.perf_counter()
                answer = await client.post("/webhook/github", content=body, headers=headers)
                if waits is not None:
                    waits.append(time.perf_counter() - sent)
                accepted += answer.status_code == 202
                if number % 1000 == 0:
                    await asyncio.to_thread(report, number)

        await asyncio.gather(*(lane() for _ in range(16)))
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=15.0, help="events a second")
    parser.add_argument("--result-bytes", type=int, default=MB)
    parser.add_argument("--keep", default="10s", help="retention of every kind, or off")
    parser.add_argument("--interval", default="2s", help="how often serve prunes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mecha-bench-soak-"))
    line_text = "The review found nothing of note in this part of the change.\n"
    output = (line_text * (args.result_bytes // len(line_text) + 1))[: args.result_bytes]
    answer = json.dumps({"output": output}).encode()
    began = time.monotonic()
    with InstantWorker(record=False) as worker:
        worker.set(body=answer)
        home = make_home(work, worker.url, args.keep, args.interval)
        db = home / "mecha.db"
        sizes = Sizes(db)
        print(
            f"{os.cpu_count()} cores; {args.events:,} events at {args.rate:g}/s, results of "
            f"{len(answer):,} bytes; retention {args.keep}, pruned every {args.interval}"
        )
        with ServeProcess(home, env={"MECHA_LOG_LEVEL": "INFO"}) as server:
            started = time.monotonic()
            waits: list[float] = []
            accepted = asyncio.run(send_all(
                server.url, args.events, args.rate,
                lambda n: print(line(f"{n:,} sent", sizes, db, started), flush=True), waits,
            ))  # fmt: skip
            deadline = time.monotonic() + 600
            while worker.received < args.events and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)
            print(line("all answered", sizes, db, started), flush=True)
            if args.keep != "off":
                waited = time.monotonic() + 120
                while rows(db)["events"] and time.monotonic() < waited:
                    time.sleep(0.5)
                print(line("all pruned", sizes, db, started), flush=True)
            log = server.log()
        print(line("serve stopped", sizes, db, started), flush=True)
        sizes.close()
    pruned = [entry for entry in log.splitlines() if "pruned " in entry]
    print(f"accepted {accepted:,} of {args.events:,} webhooks; worker answered "
          f"{worker.received:,} tasks; {len(pruned)} prune passes removed something")  # fmt: skip
    waits.sort()
    p50, p99 = (waits[int(share * (len(waits) - 1))] * 1000 for share in (0.5, 0.99))
    print(f"webhook answered (202, stored and synced): p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"slowest {waits[-1] * 1000:.0f} ms")  # fmt: skip
    print(f"largest database file seen: {sizes.max_db / MB:.1f} MB; run took "
          f"{time.monotonic() - began:.0f} s")  # fmt: skip
    if pruned:
        print("last prune pass:", pruned[-1].split(": ", 1)[-1])
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
