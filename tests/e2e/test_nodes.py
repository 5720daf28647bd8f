"""Two `mecha serve` nodes on one PostgreSQL database: a node that starts while another runs
a slow task leaves that task alone (its lease is renewed), so the worker gets it once; and
`mecha node ls` and /health list both nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mecha.store.postgres.store import open_postgres
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from mecha.worker.kind import WorkerState
from tests.e2e.dispatching import FAST, RULE
from tests.e2e.serving import make_home, post_github, pr_payload

#: a short lease (renewed every 1/3 s): the slow task outlives many of them
LEASE = 1.0
#: the worker answers after this many seconds
SLOW = 8.0


def mecha(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    environ.update({"MECHA_HOME": str(home), **env})
    return subprocess.run(
        [sys.executable, "-m", "mecha", *args], env=environ, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def wait(check, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not so after {timeout} s"
        time.sleep(0.05)
    return found


def test_a_node_starting_does_not_send_another_nodes_running_task_again(
    tmp_path: Path, pg_url: str
) -> None:
    env = {"MECHA_DATABASE_URL": pg_url, "MECHA_LEASE": f"{LEASE}s"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    home_a = make_home(tmp_path / "a", config=FAST)
    home_b = make_home(tmp_path / "b", config=FAST)
    store = open_postgres(pg_url)
    try:
        with InstantWorker() as worker:
            worker.set(delay=SLOW)
            spec = home_a / "slow.yml"
            spec.write_text(f"name: slow\nendpoint: {worker.url}\nevents:\n{RULE}")
            added = mecha(home_a, env, "worker", "add", str(spec))
            assert added.returncode == 0, added.stderr
            store.set_worker_state("slow", WorkerState.ONLINE)

            with ServeProcess(home_a, env=env) as node_a:
                answer = post_github(node_a.url, pr_payload())
                assert answer.status_code == 202, answer.text
                event_id = answer.json()["id"]
                worker.wait_for(1)
                [task] = store.list_tasks(event_id=event_id)
                assert task.state.value == "running"
                with ServeProcess(home_b, env=env) as node_b:
                    nodes = wait(lambda: len(store.list_nodes()) == 2 and store.list_nodes(),
                                 "both nodes registered")  # fmt: skip
                    [a, b] = nodes
                    assert a.pid == node_a.pid and b.pid == node_b.pid
                    # node A keeps renewing its lease well past its first end, while node
                    # B sweeps every 100 ms
                    wait(
                        lambda: store.list_nodes()[0].heartbeat_at > task.dispatched_at + 3 * LEASE,
                        "node A heartbeats past three leases",
                    )
                    listed = mecha(home_b, env, "node", "ls")
                    assert listed.returncode == 0, listed.stderr
                    for node in (a, b):
                        [line] = [ln for ln in listed.stdout.splitlines() if node.id in ln]
                        assert "alive" in line and str(node.pid) in line
                    [line_a] = [ln for ln in listed.stdout.splitlines() if a.id in ln]
                    assert line_a.split()[-1] == "1"  # node A's task in flight
                    health = httpx.get(f"{node_b.url}/health", timeout=10).json()
                    assert health["node_lease_ms"] == LEASE * 1000  # MECHA_LEASE is used
                    shown = {n["id"]: n for n in health["nodes"]}
                    assert shown[a.id]["in_flight"] == 1 and shown[b.id]["in_flight"] == 0
                    assert shown[a.id]["state"] == shown[b.id]["state"] == "alive"

                    done = wait(
                        lambda: (t := store.get_task(task.id)).state.value == "completed" and t,
                        "the task completes",
                    )
                    assert done.attempts == 1
                    assert len(worker.requests) == 1, "the task was sent twice"
                    steps = [e.step for e in store.list_timeline(task_id=task.id)]
                    assert "requeued" not in steps, steps
                    logs = node_a.log() + node_b.log()
            # both stopped cleanly: listed as stopped
            listed = mecha(home_a, env, "node", "ls", "--json")
            assert listed.returncode == 0, listed.stderr
            states = {n["id"]: n["state"] for n in json.loads(listed.stdout)}
            assert states == {a.id: "stopped", b.id: "stopped"}, logs
    finally:
        store.close()
