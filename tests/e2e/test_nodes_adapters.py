"""Adapter workers are node-local: two `mecha serve` nodes on one PostgreSQL each run their
own adapter of the worker (its own loopback port and key) and send their tasks to it,
whichever node started last or stopped first (a real llama.cpp server answers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mecha.store.postgres.store import open_postgres
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, RULE, wait_task
from tests.e2e.serving import make_home, post_github, pr_payload
from tests.llm_servers import LlmServer


def mecha(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    environ.update({"MECHA_HOME": str(home), **env})
    return subprocess.run(
        [sys.executable, "-m", "mecha", *args], env=environ, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def completed(url: str, number: int) -> dict[str, object]:
    answer = post_github(url, pr_payload(number=number))
    assert answer.status_code == 202, answer.text
    [task] = wait_task(url, answer.json()["id"], timeout=120)
    assert task["state"] == "completed", task
    return task


def test_each_node_sends_an_adapters_tasks_to_its_own_adapter(
    tmp_path: Path, pg_url: str, llama_server: LlmServer
) -> None:
    env = {"MECHA_DATABASE_URL": pg_url, "MECHA_LEASE": "2s"}
    homes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        homes.append(make_home(tmp_path / name, config=FAST))
    spec = homes[0] / "gpt.yml"
    spec.write_text(
        "name: gpt\nadapter:\n  type: openai\n"
        f"  upstream: {llama_server.url}\n  model: smollm2\n  max_tokens: 4\n"
        f"  temperature: 0\nevents:\n{RULE}",
        encoding="utf-8",
    )
    added = mecha(homes[0], env, "worker", "add", str(spec))
    assert added.returncode == 0, added.stderr
    store = open_postgres(pg_url)
    try:
        with ServeProcess(homes[0], env=env) as node_a:
            with ServeProcess(homes[1], env=env) as node_b:
                # node B started last: the worker's record names B's adapter; A still
                # sends to its own (with its own key: B's adapter would refuse it)
                recorded = store.get_worker("gpt").endpoint
                for number, node in enumerate((node_a, node_b, node_a, node_b), start=1):
                    completed(node.url, number)
            # B stopped (cleanly): A's adapter still serves, whatever B recorded
            completed(node_a.url, 9)
            logs = node_a.log()
        assert recorded.startswith("http://127.0.0.1:")
        # a refused key reads "the worker refused the key (401)"; a bare 401 may be part of a
        # port, a timestamp or the test database's name
        assert "refused the key" not in logs and " 401 " not in logs, logs
    finally:
        store.close()
