"""Worker changes reach a running `mecha serve`: adapters, unmanaged and managed workers
added, replaced and removed with the CLI while serve runs, and the next task runs on the
new definition.

Real parts only: serve in a child process, adapters in front of the real SmolLM2 server
(through ``ModelGate``, which records what the model API was asked and can keep a task in
flight), instant workers for unmanaged endpoints, the Docker engine for managed workers.
Events are sent right after `mecha worker add --replace` returns, without waiting for
serve to notice: serve must hold the worker's tasks until its new definition is in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker  # type: ignore[import-untyped]
import httpx
import pytest

from mecha.store import WorkerRecord
from mecha.store.sqlite.store import open_sqlite
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from mecha.timeline import TimelineEntry
from mecha.worker.kind import WorkerState
from tests.components import require_docker
from tests.conftest import REPO
from tests.e2e.dispatching import FAST, RULE, wait_task
from tests.e2e.model_gate import ModelGate
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload, settled
from tests.llm_servers import LlmServer

T = TypeVar("T")
IMAGE = "mecha-test-worker:latest"
DEADLINE = 60.0


# --- helpers ----------------------------------------------------------------------------


def wait_until(what: str, check: Callable[[], T | None], timeout: float = DEADLINE) -> T:
    """``check()`` once it is truthy; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def register(home: Path, name: str, body: str, *, replace: bool = False) -> None:
    """Write worker ``name`` (``body``: its YAML after the name) and `mecha worker add` it."""
    path = home / f"{name}.yml"
    path.write_text(f"name: {name}\n{body}events:\n{RULE}", encoding="utf-8")
    done = mecha_cli(home, "worker", "add", *(["--replace"] if replace else []), str(path))
    assert done.returncode == 0, done.stderr


def record(home: Path, name: str) -> WorkerRecord | None:
    store = open_sqlite(home / "mecha.db")
    try:
        return next((r for r in store.list_workers() if r.name == name), None)
    finally:
        store.close()


def definition_steps(home: Path, name: str) -> list[TimelineEntry]:
    """Worker ``name``'s own timeline entries (no event, no task): what serve did."""
    store = open_sqlite(home / "mecha.db")
    try:
        entries = store.list_timeline(worker=name)
    finally:
        store.close()
    assert all(e.worker == name and not e.event_id and not e.task_id for e in entries)
    return [e for e in entries if e.step == "definition"]


def task_steps(home: Path, task_id: str) -> list[TimelineEntry]:
    store = open_sqlite(home / "mecha.db")
    try:
        return store.list_timeline(task_id=task_id)
    finally:
        store.close()


def step_at(home: Path, task_id: str, step: str) -> TimelineEntry:
    [entry] = [e for e in task_steps(home, task_id) if e.step == step]
    return entry


def send(url: str, number: int) -> str:
    answer = post_github(url, pr_payload(number=number))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def one_task(url: str, number: int, **options: Any) -> dict[str, Any]:
    [task] = wait_task(url, send(url, number), timeout=DEADLINE, **options)
    return task


def online(home: Path, name: str) -> WorkerRecord | None:
    found = record(home, name)
    return found if found is not None and found.state is WorkerState.ONLINE else None


def adapter(upstream: str, model: str, max_tokens: int, extra: str = "") -> str:
    return (
        f"{extra}adapter:\n  type: openai\n  upstream: {upstream}\n  model: {model}\n"
        f"  max_tokens: {max_tokens}\n  temperature: 0\n"
    )


def asked(gate: ModelGate) -> list[tuple[str, int]]:
    """(model, max_tokens) of every chat request the model API received, in order."""
    return [(r["model"], r["max_tokens"]) for r in gate.requests]


# --- adapters ---------------------------------------------------------------------------


def test_an_adapter_added_replaced_and_removed_while_serve_runs(
    tmp_path: Path, llama_server: LlmServer
) -> None:
    home = make_home(tmp_path, config=FAST)
    with ModelGate(llama_server.url) as gate, ServeProcess(home) as server:
        register(home, "gpt", adapter(gate.url, "smollm2", 4))
        first_shim = wait_until("the new adapter online", lambda: online(home, "gpt"))
        first = one_task(server.url, 1)

        register(home, "gpt", adapter(gate.url, "smollm2-next", 9), replace=True)
        replaced_at = time.time()
        second = one_task(server.url, 2)  # sent at once: it must wait for the new adapter
        second_shim = record(home, "gpt")

        removed = mecha_cli(home, "worker", "remove", "gpt")
        wait_until("the removal applied", lambda: len(definition_steps(home, "gpt")) == 3)
        with pytest.raises(httpx.ConnectError):  # the old adapters are gone
            httpx.get(f"{first_shim.endpoint}/health", timeout=5)
        assert second_shim is not None
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{second_shim.endpoint}/health", timeout=5)
        after_removal = settled(server.url, send(server.url, 3))
        log = server.log()

    assert asked(gate) == [("smollm2", 4), ("smollm2-next", 9)]
    for task, limit in ((first, 4), (second, 9)):
        assert task["state"] == "completed" and task["attempts"] == 1, task
        assert 0 < task["result"]["metadata"]["output_tokens"] <= limit
    assert second_shim.endpoint != first_shim.endpoint  # a new adapter, on a new port
    added, changed, gone = (e.detail for e in definition_steps(home, "gpt"))
    assert added.startswith("added (") and added.endswith("; adapter started")
    assert changed.startswith("definition changed (") and changed.endswith("; adapter restarted")
    assert gone.startswith("removed (") and gone.endswith("; adapter stopped")
    new_definition = changed.split("→ ")[1][:8]
    assert f"(definition {new_definition})" in step_at(home, second["id"], "dispatched").detail
    assert f"worker gpt: {changed}" in log
    assert removed.returncode == 0, removed.stderr
    assert "stops its adapter" in removed.stdout
    assert record(home, "gpt") is None
    assert after_removal["state"] == "skipped" and after_removal["tasks"] == []
    restarted = definition_steps(home, "gpt")[1].at
    sent = step_at(home, second["id"], "dispatched").at
    print(
        f"\nadd --replace returned → adapter restarted {restarted - replaced_at:.2f}s, "
        f"next task sent to it {sent - replaced_at:.2f}s"
    )


def test_an_adapter_changed_mid_task_finishes_it_then_runs_the_next_on_the_new_one(
    tmp_path: Path, llama_server: LlmServer
) -> None:
    home = make_home(tmp_path, config=FAST)
    # concurrency 2: only the hold keeps the second task from the old adapter
    with ModelGate(llama_server.url) as gate:
        register(home, "gpt", adapter(gate.url, "smollm2", 4, extra="concurrency: 2\n"))
        with ServeProcess(home) as server:
            gate.shut()
            first_event = send(server.url, 1)
            gate.wait_for(1)  # the first task is at the model, held there
            register(
                home, "gpt", adapter(gate.url, "smollm2-next", 9, extra="concurrency: 2\n"),
                replace=True,
            )  # fmt: skip
            second_event = send(server.url, 2)
            [waiting] = wait_task(server.url, second_event, states=("pending",))
            wait_until(
                "the second task to wait for the restart",
                lambda: [
                    e for e in task_steps(home, waiting["id"])
                    if e.step == "waiting" and "restarting with its new definition" in e.detail
                ],
            )  # fmt: skip
            assert len(gate.requests) == 1  # nothing went to the old adapter meanwhile
            gate.open()
            [first] = wait_task(server.url, first_event, timeout=DEADLINE)
            [second] = wait_task(server.url, second_event, timeout=DEADLINE)

    assert asked(gate) == [("smollm2", 4), ("smollm2-next", 9)]
    assert first["state"] == second["state"] == "completed", (first, second)
    assert first["attempts"] == second["attempts"] == 1  # neither failed nor retried
    [restart] = definition_steps(home, "gpt")
    assert restart.detail.endswith("; adapter restarted")
    # the first task finished on the old adapter, then it was replaced, then the second went
    finished = step_at(home, first["id"], "completed").at
    dispatched = step_at(home, second["id"], "dispatched").at
    assert finished <= restart.at <= dispatched


def test_worker_start_of_an_adapter_says_a_running_serve_handles_it(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    register(home, "gpt", adapter("http://127.0.0.1:9", "m", 4))  # a model API that is down
    without = mecha_cli(home, "worker", "start", "gpt")
    with ServeProcess(home) as server:
        during = mecha_cli(home, "worker", "start", "gpt")
        pid = server.pid
    crashed = ServeProcess(home)
    crashed.kill()  # its mark goes with it
    after_crash = mecha_cli(home, "worker", "start", "gpt")

    assert without.returncode != 0 and "start mecha serve" in without.stderr
    assert during.returncode == 0, during.stderr
    assert f"inside mecha serve (pid {pid}), in error" in during.stdout
    assert "mecha worker ls" in during.stdout and "start mecha serve" not in during.stdout
    assert after_crash.returncode != 0 and "start mecha serve" in after_crash.stderr


# --- unmanaged workers ------------------------------------------------------------------


def test_an_unmanaged_worker_follows_its_new_endpoint_and_timeout(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as one, InstantWorker() as two, ServeProcess(home) as server:
        register(home, "ep", f"endpoint: {one.url}\nmax_retries: 0\n")
        started = mecha_cli(home, "worker", "start", "ep")
        assert started.returncode == 0, started.stderr
        first = one_task(server.url, 1)

        register(home, "ep", f"endpoint: {two.url}\nmax_retries: 0\n", replace=True)
        second = one_task(server.url, 2)  # sent at once

        two.set(delay=5)
        register(home, "ep", f"endpoint: {two.url}\nmax_retries: 0\ntimeout: 1s\n", replace=True)
        third = one_task(server.url, 3)
        wait_until("both changes recorded", lambda: len(definition_steps(home, "ep")) == 3)
        shown = mecha_cli(home, "worker", "show", "ep")

        assert mecha_cli(home, "worker", "stop", "ep").returncode == 0
        assert mecha_cli(home, "worker", "remove", "ep").returncode == 0
        wait_until("the removal applied", lambda: len(definition_steps(home, "ep")) == 4)
        after_removal = settled(server.url, send(server.url, 4))
        answered = (len(one.requests), len(two.requests))

    assert answered == (1, 2)
    assert first["state"] == second["state"] == "completed", (first, second)
    assert third["state"] == "failed" and "within 1s" in third["error"], third
    steps = [e.detail for e in definition_steps(home, "ep")]
    assert [s.split(" (")[0] for s in steps] == [
        "added", "definition changed", "definition changed", "removed",
    ]  # fmt: skip
    assert steps[1].endswith("; the next task uses it")
    # `mecha worker show` lists what serve did, in order, beside the worker's state
    assert shown.returncode == 0, shown.stderr
    assert "state:    online" in shown.stdout and two.url in shown.stdout
    rows = [line.split(None, 4) for line in shown.stdout.splitlines()]
    listed = [row[4].split(" (")[0] for row in rows if row[1:3] == ["definition", "ep"]]
    assert listed == ["added", "definition changed", "definition changed"], shown.stdout
    assert after_removal["state"] == "skipped"


# --- managed workers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk() -> Iterator[Any]:
    require_docker()
    client = docker.from_env(timeout=60)
    client.images.build(path=str(REPO / "tests" / "docker_image"), tag=IMAGE, rm=True)
    yield client
    client.close()


def boxes(sdk: Any, worker: str) -> list[dict[str, Any]]:
    """The worker's containers as the engine lists them (id, state, labels)."""
    rows: list[dict[str, Any]] = sdk.api.containers(
        all=True, filters={"label": f"mecha.worker={worker}"}
    )
    return rows


def managed(lifecycle: str, mark: str, *, pool: int = 0) -> str:
    lines = f"  lifecycle: {lifecycle}\n" + (f"  pool: {pool}\n" if pool else "")
    return (
        f"timeout: 20s\nmax_retries: 0\ndocker:\n  image: {IMAGE}\n{lines}"
        f"  env: {{MARK: {mark}}}\n  labels: {{mark: {mark}}}\n"
    )


def marked(rows: list[dict[str, Any]], mark: str) -> bool:
    return bool(rows) and all(row["Labels"].get("mark") == mark for row in rows)


def managed_serve(home: Path) -> ServeProcess:
    return ServeProcess(home, env={"MECHA_DRAIN_TIMEOUT": "1s"})


def test_a_disposable_pool_is_refilled_with_the_new_definition(tmp_path: Path, sdk: Any) -> None:
    home = make_home(tmp_path, config=FAST)
    with managed_serve(home) as server:
        register(home, "box", managed("disposable", "one", pool=1))
        [ready] = wait_until("a warm container", lambda: boxes(sdk, "box"))
        first = one_task(server.url, 1)

        register(home, "box", managed("disposable", "two", pool=1), replace=True)
        second = one_task(server.url, 2)  # sent at once

        def refilled_pool() -> list[dict[str, Any]]:
            rows = boxes(sdk, "box")
            return rows if len(rows) == 1 and marked(rows, "two") else []

        [refilled] = wait_until("the pool refilled from the new definition", refilled_pool)

        assert mecha_cli(home, "worker", "remove", "box").returncode == 0
        wait_until("the pool emptied", lambda: not boxes(sdk, "box"))
        gone = [e.detail for e in definition_steps(home, "box")][-1]

    assert ready["Labels"]["mark"] == "one"
    assert first["result"]["metadata"]["env"]["MARK"] == "one"
    assert second["state"] == "completed", second
    assert second["result"]["metadata"]["env"]["MARK"] == "two"
    assert refilled["Id"] != ready["Id"]
    added, changed, _ = (e.detail for e in definition_steps(home, "box"))
    assert added.endswith("; warm pool filling with 1 container")
    assert changed.endswith("warm pool filling with 1 container of the new definition")
    assert gone.startswith("removed (")


def test_a_running_persistent_container_is_made_again_from_the_new_definition(
    tmp_path: Path, sdk: Any
) -> None:
    home = make_home(tmp_path, config=FAST)
    with managed_serve(home) as server:
        register(home, "keep", managed("persistent", "one"))
        started = mecha_cli(home, "worker", "start", "keep")
        assert started.returncode == 0, started.stderr
        [old_box] = boxes(sdk, "keep")
        first = one_task(server.url, 1)

        register(home, "keep", managed("persistent", "two"), replace=True)
        replaced_at = time.time()
        second = one_task(server.url, 2)  # sent at once: waits for the new container
        after = record(home, "keep")
        [new_box] = boxes(sdk, "keep")

        removed = mecha_cli(home, "worker", "remove", "keep")
        left = boxes(sdk, "keep")

    assert first["result"]["metadata"]["env"]["MARK"] == "one"
    assert second["state"] == "completed" and second["attempts"] == 1, second
    assert second["result"]["metadata"]["env"]["MARK"] == "two"
    assert old_box["Labels"]["mark"] == "one" and new_box["Labels"]["mark"] == "two"
    assert after is not None and after.state is WorkerState.ONLINE
    assert after.container_id == new_box["Id"] != old_box["Id"]
    [changed] = [e.detail for e in definition_steps(home, "keep")][1:2]
    assert changed.endswith("; container restarted")
    assert removed.returncode == 0 and left == []
    sent = step_at(home, second["id"], "dispatched").at
    print(f"\nadd --replace → next task sent to the new container {sent - replaced_at:.2f}s")
