"""Wall time of `mecha worker ls` with 200 registered workers and of `mecha --help`.

Run:  .venv/bin/python bench/cli_latency.py [--workers 200] [--runs 10]
Target: median under 250 ms each on a 2-core machine. Each run is a fresh process, as a
user's shell starts it, so interpreter start-up and imports are included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MECHA = Path(sys.executable).parent / "mecha"
TARGET_MS = 250.0


def _make_workers(folder: Path, count: int) -> None:
    folder.mkdir()
    for i in range(count):
        (folder / f"w{i:03d}.yml").write_text(
            f"name: worker-{i:03d}\n"
            f"endpoint: http://127.0.0.1:{20000 + i}\n"
            "events:\n"
            "  - source: github\n"
            "    on: [pull_request.opened, pull_request.synchronize]\n"
            '    prompt: "Review:\\n{{.diff}}"\n'
            "policy:\n  comment: {allow: true, max_length: 2000}\n"
        )


def _time(args: list[str], env: dict[str, str], runs: int) -> list[float]:
    subprocess.run([str(MECHA), *args], env=env, capture_output=True, check=True)  # warm caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(MECHA), *args], env=env, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MECHA_HOME": str(Path(tmp) / "home")}
        folder = Path(tmp) / "workers"
        _make_workers(folder, opts.workers)
        start = time.perf_counter()
        subprocess.run(
            [str(MECHA), "worker", "add", str(folder)], env=env, capture_output=True, check=True
        )
        add_ms = (time.perf_counter() - start) * 1000
        ls = _time(["worker", "ls"], env, opts.runs)
        help_ = _time(["--help"], env, opts.runs)
    print(f"mecha worker add <folder of {opts.workers}>: {add_ms:7.1f} ms (one run)")
    for label, times in (
        (f"mecha worker ls ({opts.workers} workers)", ls),
        ("mecha --help", help_),
    ):
        median = statistics.median(times)
        verdict = "ok" if median < TARGET_MS else "OVER TARGET"
        print(
            f"{label:34s} median {median:6.1f} ms  min {min(times):6.1f}  max {max(times):6.1f}"
            f"  (target < {TARGET_MS:.0f} ms: {verdict})"
        )
    command = f"bench/cli_latency.py --workers {opts.workers} --runs {opts.runs}"
    print(f"reproduce: {Path(sys.executable)} {command}")


if __name__ == "__main__":
    main()
