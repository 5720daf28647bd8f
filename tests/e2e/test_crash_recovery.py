"""Kill -9 a real `mecha serve` under a stream of signed webhooks, again and again.

At the end, every event that got a 2xx answer has exactly one task per matching worker, and
every task reached a final state: nothing acknowledged is lost, nothing is doubled.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx

from mecha.forges.signing import github_headers
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, endpoint_worker
from tests.e2e.serving import GITHUB_SECRET, make_home, pr_payload

ROUNDS = 4
WORKERS = ("alpha", "beta")
OPEN = "concurrency: 4\nrate_limit: {per_second: 0}\n"


class Sender(threading.Thread):
    """Posts signed deliveries to ``url`` until stopped; records the acknowledged ones."""

    def __init__(self, url: str, acked: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acked = acked
        self.halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.halt.is_set():
                body = pr_payload(number=random.randint(1, 10_000))  # noqa: S311
                delivery = str(uuid.uuid4())
                headers = github_headers(
                    body, secret=GITHUB_SECRET, event="pull_request", delivery_id=delivery
                )
                self.sent += 1
                try:
                    answer = client.post(
                        f"{self.url}/webhook/github", content=body, headers=headers
                    )
                except httpx.HTTPError:
                    continue  # the server died mid-request: not acknowledged, not counted
                if answer.status_code == 202:
                    self.acked[delivery] = answer.json()["id"]


def final_counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        open_tasks = conn.execute(
            "SELECT count(*) FROM tasks WHERE state NOT IN ('completed', 'failed', 'cancelled')"
        ).fetchone()[0]
        received = conn.execute("SELECT count(*) FROM events WHERE state = 'received'").fetchone()[
            0
        ]
    return int(open_tasks), int(received)


def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    rng = random.Random(4)  # noqa: S311
    acked: dict[str, str] = {}
    with InstantWorker(record=False) as worker:
        worker.set(delay=0.02)
        for name in WORKERS:
            endpoint_worker(home, name, worker.url, extra=OPEN)
        for _ in range(ROUNDS):
            server = ServeProcess(home)
            sender = Sender(server.url, acked)
            sender.start()
            time.sleep(rng.uniform(0.4, 1.5))
            server.kill()
            sender.halt.set()
            sender.join(10)
        with ServeProcess(home) as server:
            deadline = time.monotonic() + 60
            while final_counts(home / "mecha.db") != (0, 0):
                assert time.monotonic() < deadline, f"tasks never settled:\n{server.log()}"
                time.sleep(0.1)
    assert len(acked) > 50, "too few deliveries were acknowledged to mean anything"
    with sqlite3.connect(home / "mecha.db") as conn:
        events = dict(conn.execute("SELECT id, state FROM events").fetchall())
        requeued = conn.execute("SELECT count(*) FROM timeline WHERE step = 'requeued'").fetchone()
        print(f"acknowledged {len(acked)}, events {len(events)}, requeued {requeued[0]}")
        tasks = conn.execute("SELECT event_id, worker, state FROM tasks").fetchall()
    per_event: dict[str, list[str]] = {}
    for event_id, worker_name, state in tasks:
        assert state == "completed", (event_id, worker_name, state)
        per_event.setdefault(event_id, []).append(worker_name)
    for event_id in acked.values():
        assert event_id in events, f"acknowledged event {event_id} was lost"
        assert sorted(per_event.get(event_id, [])) == list(WORKERS), event_id
        assert events[event_id] == "completed"
