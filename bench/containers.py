"""Disposable worker containers: create → healthy, and what a task pays with and without a pool.

1. Start: ``--starts`` (20) times, a disposable container of ``mecha-worker-base`` (the
   stock image with the echo backend) is created, started and waited for until
   ``GET /health`` answers 200, then removed. Reports p50/p90 of create → healthy.
2. Task overhead: ``--tasks`` (10) tasks through ``Disposables.run`` (what `mecha serve`
   does for each task of a disposable worker), first with no pool, then with ``pool: 1``
   (a healthy container waiting). Each time is measured around the whole call minus the
   worker's own answer time, so it is what the container lifecycle adds to a task.

Needs a Docker engine and the base image (``mecha image build base``). Run:
``.venv/bin/python bench/containers.py``. Targets: p50 under 1 s create → healthy;
under 50 ms added per task with a warm pool.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from mecha.result import TaskResult
from mecha.runtimes.endpoint import send_task
from mecha.runtimes.http1 import Pool
from mecha.runtimes.managed.docker import DockerRuntime
from mecha.runtimes.managed.pools import Disposables, managed_spec
from mecha.secrets import Secrets
from mecha.worker.spec import WorkerSpec

IMAGE = "mecha-worker-base"


def spec(pool: int = 0) -> WorkerSpec:
    return WorkerSpec.model_validate(
        {"name": "bench", "timeout": "60s",
         "docker": {"image": IMAGE, "lifecycle": "disposable", "pool": pool}}
    )  # fmt: skip


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def starts(count: int, home: Path) -> list[float]:
    runtime = DockerRuntime()
    took = []
    try:
        for _ in range(count):
            container = managed_spec("bench", spec(), secrets=Secrets.empty(), home=home)
            began = time.monotonic()
            started = runtime.start(container)
            took.append(time.monotonic() - began)
            runtime.remove(started.container_id)
    finally:
        runtime.close()
    return took


async def overheads(count: int, home: Path, pool: int) -> list[float]:
    disposables = Disposables(home=home, secrets=Secrets.empty)
    client = Pool()
    worker = spec(pool)
    added: list[float] = []
    try:
        if pool:
            await disposables.fill("bench", worker)
        for n in range(count):
            answered: list[float] = []

            async def send(
                endpoint: str, api_key: str, n: int = n, answered: list[float] = answered
            ) -> TaskResult:
                began = time.monotonic()
                result = await send_task(
                    client, endpoint, task_id=f"t{n}", prompt="hello", context={},
                    api_key=api_key, timeout=30,
                )  # fmt: skip
                answered.append(time.monotonic() - began)
                return result

            began = time.monotonic()
            await disposables.run("bench", worker, send)
            added.append(time.monotonic() - began - answered[0])
            if pool:  # let the pool refill, as it would between real tasks
                while not disposables.ready("bench"):
                    await asyncio.sleep(0.02)
    finally:
        await disposables.close()
        await client.close()
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=10)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mecha-bench-containers-"))
    took = starts(args.starts, home)
    cold = asyncio.run(overheads(args.tasks, home, pool=0))
    warm = asyncio.run(overheads(args.tasks, home, pool=1))
    ms = 1000
    print(f"{os.cpu_count()} cores; image {IMAGE}")
    print(
        f"create → healthy ({len(took)} starts): p50 {percentile(took, 0.5) * ms:.0f} ms, "
        f"p90 {percentile(took, 0.9) * ms:.0f} ms (target p50 < 1,000 ms)"
    )
    print(
        f"added per task, no pool ({len(cold)}): p50 {statistics.median(cold) * ms:.0f} ms, "
        f"p90 {percentile(cold, 0.9) * ms:.0f} ms"
    )
    print(
        f"added per task, pool 1 ({len(warm)}): p50 {statistics.median(warm) * ms:.1f} ms, "
        f"p90 {percentile(warm, 0.9) * ms:.1f} ms (target < 50 ms)"
    )


if __name__ == "__main__":
    main()
