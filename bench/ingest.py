"""Durable webhook ingest against a bare signature-checking app, in one run.

Sends signed ~22 KB ``pull_request.opened`` deliveries with unique delivery ids from 32
keep-alive connections (wrk, from Debian's ``wrk`` package) to:

1. ``mecha serve`` (every 202 sent only after its event is committed and synced), and
2. ``bench/bare_app.py``: the same Starlette/uvicorn stack that only verifies the signature.

Then it paces 1,000 requests/s at ``mecha serve`` (an open-loop asyncio client: latency is
counted from when each request was due, so queueing shows) and reports p50/p99 ack latency.

Run: ``.venv/bin/python bench/ingest.py`` (``--duration 10 --rate 1000 --workers 1``).
Targets: mecha ≥ 0.55x the bare app's rate; p99 ack < 30 ms at 1,000 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from mecha.testing.serve_process import ServeProcess

SECRET = "bench-webhook-secret"  # noqa: S105 - a benchmark's own secret
REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "src" / "mecha" / "samples" / "github" / "pull_request.opened.json"
SIZE = 22 * 1024
LUA = """
local counter = 0
local prefix = "%(prefix)s"
wrk.method = "POST"
wrk.body = io.open("%(body)s", "rb"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "pull_request"
wrk.headers["X-Hub-Signature-256"] = "%(signature)s"
request = function()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = prefix .. "-" .. counter
  return wrk.format(nil, "/webhook/github")
end
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d, " ..
    "\\"non2xx\\": %%d, \\"errors\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def payload() -> bytes:
    """A real pull_request.opened payload (the recorded sample), padded to ~22 KB."""
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    data.setdefault("pull_request", {})
    body = json.dumps(data).encode()
    data["pull_request"]["body"] = "Long description. " * max(0, (SIZE - len(body)) // 18)
    return json.dumps(data).encode()


def signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def run_wrk(url: str, body_path: Path, sig: str, duration: int, work: Path) -> dict[str, float]:
    script = work / f"post-{uuid.uuid4().hex[:6]}.lua"
    prefix = uuid.uuid4().hex[:8]
    script.write_text(LUA % {"prefix": prefix, "body": body_path, "signature": sig})
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{duration}s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    seconds = result["duration_us"] / 1e6
    return {
        "rps": result["requests"] / seconds,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "requests": result["requests"],
        "bad": result["non2xx"] + result["errors"],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "bare_app.py"), str(port), SECRET],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.post(f"{url}/webhook/github", content=b"{}")
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("the bare app did not start")


async def paced(url: str, body: bytes, sig: str, rate: int, seconds: int) -> list[float]:
    """Open-loop load at ``rate``/s over 32 connections; each latency from its due time."""
    host, port = url.removeprefix("http://").split(":")
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await asyncio.open_connection(host, int(port)))
    head = (
        f"POST /webhook/github HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-GitHub-Event: pull_request\r\nX-Hub-Signature-256: {sig}\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    latencies: list[float] = []
    start = time.perf_counter() + 0.1

    async def one(index: int) -> None:
        due = start + index / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        reader, writer = await pool.get()
        delivery = f"X-GitHub-Delivery: paced-{start}-{index}\r\n\r\n"
        writer.write(head.encode() + delivery.encode() + body)
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - due)
        pool.put_nowait((reader, writer))
        if not status.startswith(b"HTTP/1.1 202"):
            raise RuntimeError(f"unexpected answer: {status!r}")

    await asyncio.gather(*(one(i) for i in range(rate * seconds)))
    while not pool.empty():
        pool.get_nowait()[1].close()
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="workers that match each event")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="mecha-bench-"))
    body = payload()
    body_path = work / "body.json"
    body_path.write_bytes(body)
    sig = signature(body)
    print(
        f"payload {len(body)} bytes; 32 connections; {args.duration} s per run; "
        f"{os.cpu_count()} cores"
    )

    bare, bare_url = start_bare()
    try:
        base = run_wrk(bare_url, body_path, sig, args.duration, work)
    finally:
        bare.terminate()
        bare.wait()
    home = make_home(work, args.workers)
    with ServeProcess(home, env={"MECHA_LOG_LEVEL": "WARNING"}) as server:
        ours = run_wrk(server.url, body_path, sig, args.duration, work)
        health = httpx.get(f"{server.url}/health").json()
        latencies = asyncio.run(paced(server.url, body, sig, args.rate, args.duration))
    report(base, ours, health, latencies=latencies, rate=args.rate, home=home)
    shutil.rmtree(work, ignore_errors=True)


def make_home(work: Path, workers: int) -> Path:
    home = work / "home"
    home.mkdir(mode=0o700)
    secrets = home / "secrets.yml"
    secrets.write_text(f"github:\n  webhook_secret: {SECRET}\n")
    secrets.chmod(0o600)
    for n in range(workers):
        path = work / f"w{n}.yml"
        path.write_text(
            f"name: bench-{n}\nendpoint: http://127.0.0.1:9\nevents:\n  - source: github\n"
            "    on: [pull_request.opened]\n    prompt: 'Review {{.title}} #{{.number}}'\n"
        )
        env = {**os.environ, "MECHA_HOME": str(home)}
        subprocess.run([sys.executable, "-m", "mecha", "worker", "add", str(path)], env=env,
                       check=True, capture_output=True)  # fmt: skip
    return home


def report(
    base: dict[str, float], ours: dict[str, float], health: dict[str, int], *,
    latencies: list[float], rate: int, home: Path,
) -> None:  # fmt: skip
    with sqlite3.connect(home / "mecha.db") as conn:
        stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    batch = health["events_stored"] / max(1, health["commit_batches"])
    print(f"{'':22}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for name, row in (("bare ASGI (verify)", base), ("mecha serve (durable)", ours)):
        print(
            f"{name:22}{row['rps']:12.0f}{row['p50_ms']:10.2f}{row['p99_ms']:10.2f}"
            f"{row['bad']:9.0f}"
        )
    print(f"ratio mecha/bare: {ours['rps'] / base['rps']:.2f} (target >= 0.55)")
    print(f"events stored: {stored}; mean events per synced commit: {batch:.1f}")
    print(
        f"paced {rate}/s for {len(latencies) // rate} s: "
        f"p50 {percentile(latencies, 0.5) * 1000:.2f} ms,"
        f" p99 {percentile(latencies, 0.99) * 1000:.2f} ms (target < 30 ms)"
    )


if __name__ == "__main__":
    main()
