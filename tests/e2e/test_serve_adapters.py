"""Adapter workers inside a real `mecha serve`: started by serve, reached through the worker
contract, answered by real model servers (llama.cpp with SmolLM2, an Ollama-protocol proxy,
and the embedded model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, RULE, wait_task
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload
from tests.llm_servers import LlmServer


def adapter_worker(home: Path, name: str, adapter: str, *, extra: str = "") -> None:
    path = home / f"{name}.yml"
    path.write_text(f"name: {name}\nadapter:\n{adapter}{extra}events:\n{RULE}", encoding="utf-8")
    done = mecha_cli(home, "worker", "add", str(path))
    assert done.returncode == 0, done.stderr


def workers(home: Path) -> dict[str, dict[str, Any]]:
    done = mecha_cli(home, "worker", "ls", "--json")
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)}


def test_openai_and_ollama_adapters_answer_webhook_tasks(
    tmp_path: Path, llama_server: LlmServer, ollama_server: LlmServer
) -> None:
    home = make_home(tmp_path, config=FAST)
    options = "  max_tokens: 12\n  temperature: 0\n"
    adapter_worker(
        home, "gpt", f"  type: openai\n  upstream: {llama_server.url}\n  model: smollm2\n{options}"
    )
    adapter_worker(
        home, "llama", f"  type: ollama\n  upstream: {ollama_server.url}\n"
        f"  model: {ollama_server.model}\n  stream: true\n{options}",
    )  # fmt: skip
    with ServeProcess(home) as server:
        listed = workers(home)
        answer = post_github(server.url, pr_payload())
        tasks = wait_task(server.url, answer.json()["id"], count=2, timeout=60)
        shim = listed["gpt"]["endpoint"]
        refused = httpx.post(f"{shim}/task", json={"prompt": "hi"}, timeout=10)
    assert {w["state"] for w in listed.values()} == {"online"}
    assert all(w["endpoint"].startswith("http://127.0.0.1:") for w in listed.values())
    assert {w["health"] for w in listed.values()} == {"ok"}
    for task in tasks:
        assert task["state"] == "completed", task
        assert task["result"]["output"].strip()
        assert task["result"]["metadata"]["output_tokens"] > 0
    assert refused.status_code == 401  # the shim takes tasks from this serve only
    after = workers(home)
    assert {w["state"] for w in after.values()} == {"offline"}  # stopped with serve


def test_the_embedded_model_runs_inside_serve(tmp_path: Path, llama_server: LlmServer) -> None:
    del llama_server  # only to make sure the model is installed (fails under CI if not)
    home = make_home(tmp_path, config=FAST)
    adapter_worker(home, "local", "  type: local\n  max_tokens: 8\n  temperature: 0\n")
    with ServeProcess(home) as server:
        answer = post_github(server.url, pr_payload())
        [task] = wait_task(server.url, answer.json()["id"], timeout=60)
    assert task["state"] == "completed", task
    assert task["result"]["metadata"]["input_tokens"] > 0


def test_worker_start_on_an_adapter_is_refused(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    adapter_worker(home, "gpt", "  type: openai\n  upstream: http://127.0.0.1:9\n  model: m\n")
    done = mecha_cli(home, "worker", "start", "gpt")
    assert done.returncode != 0
    assert "adapter workers run inside `mecha serve`" in done.stderr


def test_an_upstream_that_hides_a_metadata_address_is_refused_at_start(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    # 2852039166 is 169.254.169.254 written as one number: the file check lets it through,
    # the resolver does not
    adapter_worker(home, "sneaky", "  type: openai\n  upstream: http://2852039166/\n  model: m\n")
    with ServeProcess(home):
        listed = workers(home)
    assert listed["sneaky"]["state"] == "error"
    assert "169.254.169.254" in listed["sneaky"]["error"]


def test_an_adapter_whose_model_api_is_down_waits_in_error(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    adapter_worker(home, "down", "  type: openai\n  upstream: http://127.0.0.1:9\n  model: m\n")
    with ServeProcess(home) as server:
        listed = workers(home)
        answer = post_github(server.url, pr_payload())
        [task] = wait_task(server.url, answer.json()["id"], states=("pending",))
    assert listed["down"]["state"] == "error"
    assert "not answering" in listed["down"]["error"]
    assert task["attempts"] == 0
