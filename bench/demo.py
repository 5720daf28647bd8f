"""`mecha demo`, phase by phase: where its seconds go.

1. The demo: ``--runs`` (3) times ``python -m mecha demo`` with its output read as it
   comes; each line is stamped on arrival. The phases, from the lines the demo prints:

   prepare    start → "starting mecha serve" (the demo's imports, the scratch home)
   serve      → "mecha serve is listening" (a real `mecha serve` up, answering /health,
              the demo's worker online: serve's imports, while the demo registers
              the worker; the embedded llama.cpp server; the adapter's probe)
   webhook    → "dispatched" (the signed webhook, storing, matching, the send)
   model      → "completed" (SmolLM2 writing its review)
   report     → the last line (the policy, the dry-run write-back, the report)
   shutdown   → the demo's exit (SIGTERM to serve, its drain and exit)
   tokens     how many tokens the model wrote (the answer's length varies; 128 at most)

2. The serve start, split: ``--serve-runs`` (3) times `mecha serve` in a kept demo home,
   timed from its log: imports → "listening", the embedded model and the adapter
   → "adapter ... serves", → GET /health 200, and SIGTERM → exit.

Each phase is printed per run and as the median. The model's time depends on the
machine and on what else runs on it; the rest should stay well under a second each.
Run: ``.venv/bin/python bench/demo.py [--runs N] [--serve-runs N]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PHASES = ("prepare", "serve", "webhook", "model", "report", "shutdown", "total")
_MARKS = (
    ("prepare", re.compile(r"\] starting mecha serve")),
    ("serve", re.compile(r"\] mecha serve is listening")),
    ("webhook", re.compile(r"\] dispatched ")),
    ("model", re.compile(r"\] (completed|failed) ")),
)
_KEPT = re.compile(r"MECHA_HOME=(\S+) ")
_WRITTEN = re.compile(r"\] completed .*tokens input \d+, output (\d+)")


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def one_demo(keep: bool = False) -> tuple[dict[str, float], str]:
    """One demo run: its phases in seconds, and the kept home ("" unless ``keep``)."""
    began = time.monotonic()
    args = [sys.executable, "-m", "mecha", "demo", *(["--keep"] if keep else [])]
    proc = subprocess.Popen(
        args, env=demo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    stamps: dict[str, float] = {}
    last = began
    home = ""
    tokens = 0
    lines = []
    for line in proc.stdout:
        now = time.monotonic()
        lines.append(line)
        if line.strip() and not _KEPT.search(line):  # --keep's line comes after the stop
            last = now
        for phase, mark in _MARKS:
            if phase not in stamps and mark.search(line):
                stamps[phase] = now
        kept = _KEPT.search(line)
        if kept:
            home = kept[1]
        written = _WRITTEN.search(line)
        if written:
            tokens = int(written[1])
    code = proc.wait()
    ended = time.monotonic()
    if code != 0 or len(stamps) < len(_MARKS):
        sys.exit(f"the demo failed (exit {code}):\n{''.join(lines[-30:])}")
    phases, before = {}, began
    for phase, _ in _MARKS:
        phases[phase] = stamps[phase] - before
        before = stamps[phase]
    phases["report"] = last - before
    phases["shutdown"] = ended - last
    phases["total"] = ended - began
    phases["tokens"] = tokens
    return phases, home


def one_serve(home: str) -> dict[str, float]:
    """`mecha serve` in ``home``: imports, adapter (model) start, healthy, stop."""
    import httpx

    env = dict(demo_env(), MECHA_HOME=home)
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mecha", "serve", "--addr", "127.0.0.1:0"], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stamps: dict[str, float] = {}
    url: list[str] = []
    listening = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            now = time.monotonic()
            found = re.search(r"listening on (http://\S+)", line)
            if found and not url:
                url.append(found[1])
                stamps["imports"] = now
                listening.set()
            if re.search(r"adapter \S+ .*serves on", line) and "adapter" not in stamps:
                stamps["adapter"] = now
        listening.set()

    threading.Thread(target=read, daemon=True).start()
    listening.wait(120)
    if not url:
        proc.kill()
        sys.exit("mecha serve did not start")
    while True:
        try:
            if httpx.get(url[0] + "/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.02)
    healthy = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    ended = time.monotonic()
    adapter = stamps.get("adapter", healthy)
    return {
        "imports": stamps["imports"] - began,
        "model+adapter": adapter - stamps["imports"],
        "healthy": healthy - adapter,
        "stop": ended - healthy,
        "total": ended - began,
    }


def table(title: str, rows: list[dict[str, float]]) -> None:
    names = list(rows[0])
    print(f"\n{title}")
    print("  " + " ".join(f"{name:>14}" for name in ["run", *names]))
    for n, row in enumerate(rows, 1):
        print("  " + " ".join([f"{n:>14}", *(_cell(name, row[name]) for name in names)]))
    medians = {name: statistics.median(row[name] for row in rows) for name in names}
    print("  " + " ".join([f"{'median':>14}", *(_cell(n, v) for n, v in medians.items())]))


def _cell(name: str, value: float) -> str:
    return f"{value:>14.0f}" if name == "tokens" else f"{value:>13.2f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="demo runs")
    parser.add_argument("--serve-runs", type=int, default=3, help="serve start/stop runs")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the start")
    runs, home = [], ""
    for n in range(max(1, args.runs)):
        phases, kept = one_demo(keep=n == 0 and args.serve_runs > 0)
        runs.append(phases)
        home = home or kept
    table("mecha demo (seconds per phase)", runs)
    if home:
        try:
            serves = [one_serve(home) for _ in range(args.serve_runs)]
            table("mecha serve in the demo's home", serves)
        finally:
            shutil.rmtree(Path(home), ignore_errors=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
