"""No secret value Mecha holds reaches its database, its log, its API or its CLI's output.

A model API that refuses a key quotes it back, as real ones do; another answers with the
key inside the result. Each worker holds its key in one of the four ways a user gives
one: written literally, ``token: openai.default`` from secrets.yml, ``${VAR}`` from the
environment, and a ``ghp_``-shaped value. A real `mecha serve` runs them; then the raw
bytes of the database and its WAL, the server's log, every API route and every CLI
command's output are searched for each key.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, RULE, wait_task
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload
from tests.fake_upstream import (
    Reply,
    Route,
    Seen,
    ThreadedUpstream,
    fixture,
    json_reply,
)

# none of the first three has a token's shape: only knowing the value can mask it
LITERAL = "LiteralCanary7d3f9a21c4e8b6"
TOKEN = "TokenCanary5b1e8c0a9f2d74"
ENV = "EnvCanary3c9a7e5d1b0f86"
GHP = "ghp_" + "Canary0123456789abcdefghijklmnopqrstu"
ECHO = "EchoCanary9e8d7c6b5a4f3e"
CANARIES = {"literal": LITERAL, "token": TOKEN, "env": ENV, "ghp": GHP, "echo": ECHO}
#: where each worker's key comes from
KEYS = {
    "literal": f"  api_key: {LITERAL}\n",
    "token": "  token: openai.default\n",
    "env": "  api_key: ${LEAKY_MODEL_KEY}\n",
    "ghp": f"  api_key: {GHP}\n",
    "echo": "  token: openai.echo\n",
}


def answer(seen: Seen) -> Reply:
    """An OpenAI-style API that quotes the key it was sent back (in an error, or an answer)."""
    key = seen.headers.get("authorization", "").removeprefix("Bearer ")
    if seen.body.get("model") == "echo":
        reply = fixture("openai/chat.json")
        reply["choices"][0]["message"]["content"] = f"Reviewed. (your key is {key})"
        return json_reply(reply)
    error = {
        "message": f"Incorrect API key provided: {key}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error", "param": None, "code": "invalid_api_key",
    }  # fmt: skip
    return json_reply({"error": error}, status=401)


@pytest.fixture
def upstream() -> Iterator[ThreadedUpstream]:
    routes: dict[str, Route] = {"GET /v1/models": json_reply({"object": "list", "data": []}),
              "POST /v1/chat/completions": answer}  # fmt: skip
    with ThreadedUpstream(routes) as server:
        yield server


def leaky_home(tmp_path: Path, upstream: str) -> Path:
    home = make_home(
        tmp_path, config=FAST,
        extra_secrets=f"tokens:\n  openai:\n    default: {TOKEN}\n    echo: {ECHO}\n",
    )  # fmt: skip
    for name, key in KEYS.items():
        model = "echo" if name == "echo" else "gpt-4o-mini"
        path = home / f"{name}.yml"
        path.write_text(
            f"name: {name}\nmax_retries: 0\nadapter:\n  type: openai\n  upstream: {upstream}\n"
            f"  model: {model}\n  stream: false\n{key}events:\n{RULE}",
            encoding="utf-8",
        )
    return home


def until(done: Callable[[], bool], server: ServeProcess) -> None:
    """Wait (a generous deadline) until ``done()``; a failure shows serve's log."""
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)


def leaks(where: str, text: str | bytes) -> list[str]:
    """``where: <form>`` for each canary found in ``text``."""
    data = text.encode() if isinstance(text, str) else text
    return [f"{where}: {form}" for form, value in CANARIES.items() if value.encode() in data]


def database_bytes(home: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(home.glob("mecha.db*")):
        yield path.name, path.read_bytes()


def cli_outputs(
    home: Path, event_id: str, tasks: list[dict[str, Any]]
) -> Iterator[tuple[str, str]]:
    commands: list[list[str]] = [
        ["event", "ls"], ["event", "ls", "--json"], ["event", "show", event_id],
        ["event", "show", event_id, "--json"], ["task", "ls"], ["task", "ls", "--json"],
        ["worker", "ls"], ["worker", "ls", "--json"], ["config"], ["doctor"],
    ]  # fmt: skip
    for task in tasks:
        commands += [["task", "show", task["id"]], ["task", "show", task["id"], "--json"]]
    for name in KEYS:
        commands += [["worker", "show", name], ["worker", "validate", str(home / f"{name}.yml")]]
    for command in commands:
        done = mecha_cli(home, *command)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        yield " ".join(command), done.stdout + done.stderr


def api_outputs(url: str, event_id: str, tasks: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    routes = ["/health", "/metrics", "/events", f"/event/{event_id}", "/tasks", "/workers"]
    routes += [f"/task/{task['id']}" for task in tasks]
    for route in routes:
        got = httpx.get(f"{url}{route}", timeout=30)
        assert got.status_code == 200, (route, got.text)
        yield route, got.text


def test_no_key_is_stored_logged_served_or_printed(
    tmp_path: Path, upstream: ThreadedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKY_MODEL_KEY", ENV)
    home = leaky_home(tmp_path, upstream.url)
    found: list[str] = []
    for name in KEYS:
        added = mecha_cli(home, "worker", "add", str(home / f"{name}.yml"))
        assert added.returncode == 0, added.stderr
        found += leaks(f"mecha worker add {name}", added.stdout + added.stderr)
    with ServeProcess(home, env={"MECHA_LOG_LEVEL": "DEBUG"}) as server:
        event_id = post_github(server.url, pr_payload()).json()["id"]
        tasks = wait_task(server.url, event_id, count=len(KEYS), timeout=120)
        for where, text in api_outputs(server.url, event_id, tasks):
            found += leaks(f"GET {where}", text)
        for name, data in database_bytes(home):  # the WAL, while serve still writes it
            found += leaks(f"{name} (serve running)", data)
        for where, text in cli_outputs(home, event_id, tasks):
            found += leaks(f"mecha {where}", text)
    log = server.log()
    found += leaks("serve's log", log)
    for name, data in database_bytes(home):
        found += leaks(f"{name} (after the stop)", data)

    # every key really went out, and really came back in what the API said
    sent = {seen.headers.get("authorization", "") for seen in upstream.seen}
    assert {f"Bearer {value}" for value in CANARIES.values()} <= sent
    by_worker = {task["worker"]: task for task in tasks}
    for name in ("literal", "token", "env", "ghp"):
        failed = by_worker[name]
        assert failed["state"] == "failed", failed
        assert "Incorrect API key provided: [REDACTED]" in failed["error"], failed["error"]
    assert by_worker["echo"]["state"] == "completed", by_worker["echo"]
    assert by_worker["echo"]["result"]["output"] == "Reviewed. (your key is [REDACTED])"
    assert found == [], "\n".join(found)


def test_a_secret_added_by_sighup_is_masked_from_then_on(
    tmp_path: Path, upstream: ThreadedUpstream
) -> None:
    """A token put into secrets.yml while serve runs, and a worker that uses it: after the
    reload (SIGHUP) the new value is masked like the others."""
    home = leaky_home(tmp_path, upstream.url)
    fresh = "FreshCanary1a2b3c4d5e6f70"
    with ServeProcess(home) as server:
        secrets = home / "secrets.yml"
        secrets.write_text(secrets.read_text() + f"    fresh: {fresh}\n", encoding="utf-8")
        os.kill(server.pid, signal.SIGHUP)
        until(lambda: "secrets.yml reloaded" in server.log(), server)
        path = home / "fresh.yml"
        path.write_text((home / "token.yml").read_text().replace("name: token", "name: fresh")
                        .replace("openai.default", "openai.fresh"), encoding="utf-8")  # fmt: skip
        assert mecha_cli(home, "worker", "add", str(path)).returncode == 0
        until(
            lambda: "fresh" in {w["name"] for w in httpx.get(f"{server.url}/workers").json()},
            server,
        )
        event_id = post_github(server.url, pr_payload()).json()["id"]
        [task] = wait_task(server.url, event_id, timeout=120)
        shown = httpx.get(f"{server.url}/task/{task['id']}").text
    assert f"Bearer {fresh}" in {s.headers.get("authorization", "") for s in upstream.seen}
    assert "Incorrect API key provided: [REDACTED]" in task["error"], task["error"]
    assert fresh not in shown and fresh not in server.log()
    for name, data in database_bytes(home):
        assert fresh.encode() not in data, name


def test_an_adapter_uses_a_rotated_token_after_sighup(
    tmp_path: Path, upstream: ThreadedUpstream
) -> None:
    """secrets.yml's token changes and serve gets SIGHUP: the adapter that names it restarts
    with the new value (the next task sends it) and the old value stays masked."""
    home = leaky_home(tmp_path, upstream.url)
    assert mecha_cli(home, "worker", "add", str(home / "echo.yml")).returncode == 0
    rotated = "RotatedCanary6f5e4d3c2b1a09"
    with ServeProcess(home) as server:
        first = post_github(server.url, pr_payload(number=1)).json()["id"]
        [before] = wait_task(server.url, first, timeout=120)
        secrets = home / "secrets.yml"
        secrets.write_text(secrets.read_text().replace(ECHO, rotated), encoding="utf-8")
        os.kill(server.pid, signal.SIGHUP)
        until(lambda: "its token changed" in server.log(), server)
        second = post_github(server.url, pr_payload(number=2)).json()["id"]
        [after] = wait_task(server.url, second, timeout=120)
        shown = httpx.get(f"{server.url}/workers").text
    sent = [seen.headers.get("authorization", "") for seen in upstream.seen
            if seen.method == "POST"]  # fmt: skip
    assert sent == [f"Bearer {ECHO}", f"Bearer {rotated}"]
    assert before["state"] == after["state"] == "completed", (before, after)
    assert after["result"]["output"] == "Reviewed. (your key is [REDACTED])"
    assert "adapter restarted" in server.log()
    for value in (ECHO, rotated):
        assert value not in server.log() and value not in shown
