"""Dispatch latency and end-to-end throughput: signed webhook in → instant worker's POST /task.

1. Latency: paces ``--rate`` (200) signed ``pull_request.opened`` deliveries a second at a
   real ``mecha serve`` for ``--duration`` seconds; each delivery carries its own PR number,
   which the worker's prompt echoes, so every ``POST /task`` the instant worker receives is
   matched to the moment its webhook request was written. Reports p50/p99 of that gap.
2. Throughput: sends ``--events`` (5,000) deliveries as fast as 32 keep-alive connections
   go and waits until every task is completed in the store; reports events/s end to end
   (from the first request to the last task stored completed).

The instant worker (``mecha.testing.instant_worker``) runs in this process on its own
thread; ``mecha serve`` in a child process. Run: ``.venv/bin/python bench/dispatch.py``.
``--budget`` gives the worker a budget it never reaches, so every send also reserves and
settles in the budget ledger (``engine.budgets``): what a budget costs the claim path.
Targets: p50 < 3 ms, p99 < 15 ms at 200 events/s; >= 1,000 events/s end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess

SECRET = "bench-webhook-secret"  # noqa: S105 - a benchmark's own secret
REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "src" / "mecha" / "samples" / "github" / "pull_request.opened.json"
NUMBER = re.compile(r"#(\d+)$")
CONFIG = "dispatch:\n  concurrency: 64\n"


def body_for(template: dict[str, Any], number: int) -> tuple[bytes, str]:
    """The sample payload with its own PR number, and its signature header."""
    template["number"] = number
    template["pull_request"]["number"] = number
    body = json.dumps(template).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, f"sha256={digest}"


#: a budget no run reaches: each send reserves and settles, none waits
BUDGET = "budget: {tokens_per_day: 1000000000000, tasks_per_hour: 100000000}\n"


def make_home(work: Path, endpoint: str, *, budget: bool = False) -> Path:
    home = work / "home"
    home.mkdir(mode=0o700)
    secrets = home / "secrets.yml"
    secrets.write_text(f"github:\n  webhook_secret: {SECRET}\n")
    secrets.chmod(0o600)
    (home / "config.yml").write_text(CONFIG)
    path = work / "bench.yml"
    path.write_text(
        f"name: bench\nendpoint: {endpoint}\nconcurrency: 64\nrate_limit: {{per_second: 0}}\n"
        + (BUDGET if budget else "")
        + "events:\n  - source: github\n    on: [pull_request.opened]\n"
        "    prompt: 'Review #{{.number}}'\n"
    )
    env = {**os.environ, "MECHA_HOME": str(home)}
    for args in (["worker", "add", str(path)], ["worker", "start", "bench"]):
        subprocess.run([sys.executable, "-m", "mecha", *args], env=env, check=True,
                       capture_output=True)  # fmt: skip
    return home


class Client:
    """Raw HTTP/1.1 over a pool of keep-alive connections (no client library overhead)."""

    def __init__(self, url: str, size: int) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.size = size
        self.pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def open(self) -> None:
        for _ in range(self.size):
            self.pool.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def post(self, body: bytes, sig: str, delivery: str) -> float:
        """Send one delivery; the time.time() at which it was written."""
        reader, writer = await self.pool.get()
        head = (
            f"POST /webhook/github HTTP/1.1\r\nHost: {self.host}\r\n"
            "Content-Type: application/json\r\nX-GitHub-Event: pull_request\r\n"
            f"X-Hub-Signature-256: {sig}\r\nX-GitHub-Delivery: {delivery}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sent = time.time()
        writer.write(head.encode() + body)
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        self.pool.put_nowait((reader, writer))
        if not status.startswith(b"HTTP/1.1 202"):
            raise RuntimeError(f"unexpected answer: {status!r}")
        return sent

    def close(self) -> None:
        while not self.pool.empty():
            self.pool.get_nowait()[1].close()


async def paced(url: str, template: dict[str, Any], rate: int, seconds: int) -> dict[int, float]:
    """Deliveries numbered 1..rate*seconds at ``rate``/s; number → when it was written."""
    client = Client(url, 16)
    await client.open()
    bodies = [body_for(template, n) for n in range(1, rate * seconds + 1)]
    sent: dict[int, float] = {}
    start = time.perf_counter() + 0.1

    async def one(number: int) -> None:
        await asyncio.sleep(max(0.0, start + (number - 1) / rate - time.perf_counter()))
        body, sig = bodies[number - 1]
        sent[number] = await client.post(body, sig, f"paced-{start}-{number}")

    await asyncio.gather(*(one(n) for n in range(1, rate * seconds + 1)))
    client.close()
    return sent


async def flood(url: str, template: dict[str, Any], first: int, count: int) -> float:
    """``count`` deliveries over 32 connections as fast as they go; when the first went."""
    client = Client(url, 32)
    await client.open()
    bodies = [body_for(template, n) for n in range(first, first + count)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    began = time.time()

    async def lane() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            body, sig = bodies[index]
            await client.post(body, sig, f"flood-{first + index}")

    await asyncio.gather(*(lane() for _ in range(32)))
    client.close()
    return began


def completed(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM tasks WHERE state = 'completed'").fetchone()[0]
        )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--budget", action="store_true", help="the worker has a budget")
    args = parser.parse_args()
    template: dict[str, Any] = json.loads(SAMPLE.read_text())
    work = Path(tempfile.mkdtemp(prefix="mecha-bench-dispatch-"))
    with InstantWorker() as worker:
        home = make_home(work, worker.url, budget=args.budget)
        with ServeProcess(home, env={"MECHA_LOG_LEVEL": "WARNING"}) as server:
            sent = asyncio.run(paced(server.url, template, args.rate, args.duration))
            worker.wait_for(len(sent), timeout=60)
            gaps = []
            for received in worker.requests:
                match = NUMBER.search(received.prompt)
                if match and int(match[1]) in sent:
                    gaps.append(received.received_at - sent[int(match[1])])
            done_before = completed(home / "mecha.db")
            began = asyncio.run(flood(server.url, template, 1_000_000, args.events))
            deadline = time.monotonic() + 120
            while completed(home / "mecha.db") < done_before + args.events:
                if time.monotonic() > deadline:
                    sys.exit("tasks did not all complete within 120 s")
                time.sleep(0.01)
            took = time.time() - began
    print(f"{os.cpu_count()} cores; payload {len(body_for(template, 1)[0])} bytes")
    print(
        f"webhook → worker POST /task at {args.rate}/s ({len(gaps)} tasks): "
        f"p50 {percentile(gaps, 0.5) * 1000:.2f} ms, p99 {percentile(gaps, 0.99) * 1000:.2f} ms"
        " (targets < 3 ms, < 15 ms)"
    )
    print(
        f"end to end: {args.events} events → completed tasks in {took:.2f} s = "
        f"{args.events / took:.0f} events/s (target >= 1,000)"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
