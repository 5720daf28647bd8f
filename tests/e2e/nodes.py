"""Shared set-up for tests of several `mecha serve` nodes on one PostgreSQL database: a home
per node, workers registered in the shared database, waiting, and sending a delivery to
whichever node takes it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

from mecha.store.postgres.store import PostgresStore
from mecha.testing.serve_process import ServeProcess
from mecha.worker.kind import WorkerState
from tests.e2e.dispatching import RULE
from tests.e2e.serving import make_home, post_github

#: a short lease (renewed every 1/3 s), so a dead node's claims come back soon
LEASE = 1.0
#: how long any wait may take before the test fails: generous, never a measure of speed
DEADLINE = 120.0

T = TypeVar("T")


def node_env(pg_url: str, *, github_url: str = "", lease: float = LEASE) -> dict[str, str]:
    """A node's environment: the shared database, the lease, the forge (if any)."""
    env = {"MECHA_DATABASE_URL": pg_url, "MECHA_LEASE": f"{lease}s"}
    if github_url:
        env["GITHUB_API_URL"] = github_url
    return env


def node_home(root: Path, name: str, *, config: str, github_token: str = "") -> Path:
    """A MECHA_HOME of its own for node ``name`` (the same secrets as every other node)."""
    folder = root / name
    folder.mkdir()
    return make_home(folder, config=config, github_token=github_token)


def mecha(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The `mecha` command with ``home`` and ``env`` (nothing else of MECHA_*)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    environ.update({"MECHA_HOME": str(home), **env})
    return subprocess.run(
        [sys.executable, "-m", "mecha", *args], env=environ, capture_output=True, text=True,
        timeout=DEADLINE, check=False,
    )  # fmt: skip


def add_worker(
    home: Path, env: dict[str, str], store: PostgresStore, name: str, url: str, *,
    extra: str = "", rules: str = RULE,
) -> None:  # fmt: skip
    """Register an unmanaged worker at ``url`` in the shared database, online."""
    spec = home / f"{name}.yml"
    spec.write_text(f"name: {name}\nendpoint: {url}\n{extra}events:\n{rules}", encoding="utf-8")
    added = mecha(home, env, "worker", "add", str(spec))
    assert added.returncode == 0, added.stderr
    store.set_worker_state(name, WorkerState.ONLINE)


def wait(check: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """``check()`` once it is truthy; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not so after {timeout} s"
        time.sleep(0.05)
    return found


def deliver(
    nodes: Sequence[ServeProcess], first: int, body: bytes, delivery: str,
    timeout: float = DEADLINE,
) -> tuple[int, httpx.Response, int]:  # fmt: skip
    """POST the signed delivery to node ``first``, then to the next ones in turn, until one
    acknowledges it (2xx); (that node's index, its answer, how many tries were refused).

    A dead node refuses the connection; a stopping one may answer 503: both are passed
    over. ``nodes`` is read afresh at each try, so a node restarted meanwhile is used.
    """
    deadline = time.monotonic() + timeout
    refused = 0
    index = first
    while True:
        node = nodes[index % len(nodes)]
        try:
            answer = post_github(node.url, body, delivery=delivery)
        except httpx.HTTPError:
            answer = None
        if answer is not None and 200 <= answer.status_code < 300:
            return index % len(nodes), answer, refused
        refused += 1
        assert time.monotonic() < deadline, f"no node acknowledged delivery {delivery}"
        index += 1
        if refused % len(nodes) == 0:  # a whole round refused: give the nodes a moment
            time.sleep(0.1)
