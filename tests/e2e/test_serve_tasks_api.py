"""The tasks and workers API of a real `mecha serve`: POST /task, GET /task/{id}, GET /tasks,
GET /workers, and the timeline in GET /event/{id}; every refusal with its status and reason."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mecha.store import WorkerRecord
from mecha.store.sqlite.store import open_sqlite
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from mecha.worker.kind import WorkerKind, WorkerState
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload, settled

KEY = "t4sks-api-key-0123456789"
DEAD = "http://127.0.0.1:9"
TOKEN_SHAPED = "ghp_" + "a1b2c3d4e5" * 4
RULE = "events:\n  - source: github\n    on: [pull_request.opened]\n    prompt: Review {{.title}}\n"


def register(home: Path, workers: dict[str, str]) -> None:
    """Write each worker file (name → YAML after the name line) and add them all at once."""
    folder = home / "workers"
    folder.mkdir(exist_ok=True)
    for name, body in workers.items():
        (folder / f"{name}.yml").write_text(f"name: {name}\n{body}", encoding="utf-8")
    done = mecha_cli(home, "worker", "add", str(folder))
    assert done.returncode == 0, done.stderr


def set_states(home: Path, states: dict[str, WorkerState], endpoint: str = "") -> None:
    """Record worker states straight in the database, as `mecha worker start` would."""
    store = open_sqlite(home / "mecha.db")
    try:
        for name, state in states.items():
            store.set_worker_state(name, state, endpoint=endpoint if endpoint else None)
    finally:
        store.close()


@pytest.fixture(scope="module")
def worker() -> Iterator[InstantWorker]:
    with InstantWorker() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, worker: InstantWorker) -> Iterator[str]:
    """A server with alpha online, beta offline, gamma in error, and a few to list."""
    home = make_home(tmp_path_factory.mktemp("tasks-api"))
    register(
        home,
        {
            "alpha": f"endpoint: {worker.url}\n{RULE}",
            "beta": "endpoint: http://127.0.0.1:9\n",
            "gamma": "endpoint: http://127.0.0.1:9\n",
            "boxed": "docker:\n  image: mecha-worker:latest\n  token: claude.default\n"
            "  api_key: ${BOX_KEY:-box-key-fallback}\n  env:\n    MODE: fast\n",
        },
    )
    with ServeProcess(home) as serve:
        set_states(home, {"alpha": WorkerState.ONLINE}, endpoint=worker.url)
        set_states(home, {"gamma": WorkerState.ERROR})
        yield serve.url


def post_task(url: str, body: object, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/task", content=content, headers=headers, timeout=30)


def test_a_task_for_a_named_worker_is_stored_and_answered_202(server: str) -> None:
    sent = post_task(server, {"prompt": "Summarise #12", "worker": "alpha", "context": {"n": 12}})
    assert sent.status_code == 202, sent.text
    task = sent.json()
    assert (task["worker"], task["prompt"], task["state"]) == ("alpha", "Summarise #12", "pending")
    assert (task["event_id"], task["context"], task["attempts"]) == ("", {"n": 12}, 0)
    assert sent.headers["location"] == f"/task/{task['id']}"
    shown = httpx.get(f"{server}/task/{task['id'][:8]}").json()
    assert (shown["id"], shown["prompt"]) == (task["id"], "Summarise #12")
    assert shown["timeline"][0]["step"] == "created"
    assert shown["timeline"][0]["detail"] == "sent through the API"


def test_a_named_worker_must_be_registered(server: str) -> None:
    refused = post_task(server, {"prompt": "hi", "worker": "nobody"})
    assert refused.status_code == 404
    assert refused.json()["error"] == 'worker "nobody" is not registered'
    assert "alpha, beta, boxed, gamma" in refused.json()["hint"]


def test_an_offline_worker_is_refused_with_how_to_start_it(server: str) -> None:
    refused = post_task(server, {"prompt": "hi", "worker": "beta"})
    assert refused.status_code == 409
    assert refused.json() == {
        "error": 'worker "beta" is offline',
        "hint": "start it with mecha worker start beta",
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "the body is empty"),
        (b"{not json", "the body is not JSON: Expecting property name enclosed in double quotes"),
        (b"\xff\xfe\x00", "the body is not JSON"),
        (b"[" * 100_000, "the body is not JSON: it is nested too deeply"),
        (b'{"prompt": NaN}', "the body is not JSON: NaN is not a JSON number"),
        (b'{"prompt": "\\ud800"}', "the body is not JSON: it is not UTF-8 text"),
        ([1, 2], "the body is a list, not a JSON object"),
        ({}, "prompt is required"),
        ({"prompt": 7}, '"prompt" is a number; expected a string'),
        ({"prompt": "  \n"}, '"prompt" is empty'),
        ({"prompt": "hi", "worker": 3}, '"worker" is a number; expected a worker name'),
        ({"prompt": "hi", "worker": ""}, '"worker" is an empty string; expected a worker name'),
        ({"prompt": "hi", "context": ["x"]}, '"context" is a list; expected a JSON object'),
        ({"promt": "hi"}, 'unknown field "promt"'),
    ],
)
def test_a_bad_body_is_a_400_saying_what_is_wrong(server: str, body: object, error: str) -> None:
    refused = post_task(server, body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"].startswith(error)
    assert refused.json()["hint"]


def test_a_misspelt_field_gets_a_suggestion(server: str) -> None:
    assert post_task(server, {"promt": "hi"}).json()["hint"] == 'did you mean "prompt"?'


def test_a_body_over_one_megabyte_is_413(server: str) -> None:
    big = json.dumps({"prompt": "x" * (1024 * 1024)}).encode()
    refused = post_task(server, big)
    assert refused.status_code == 413
    assert "1 MB" in refused.json()["error"]
    just_under = json.dumps({"prompt": "y" * (1024 * 1024 - 100), "worker": "alpha"}).encode()
    assert post_task(server, just_under).status_code == 202


def test_an_unknown_task_is_404_with_the_reason(server: str) -> None:
    missing = httpx.get(f"{server}/task/0123456789abcdef")
    assert missing.status_code == 404
    assert missing.json()["error"] == 'no task has the id "0123456789abcdef"'
    assert httpx.get(f"{server}/task/ab").status_code == 404


def test_tasks_are_listed_newest_first_and_filtered(server: str) -> None:
    first = post_task(server, {"prompt": "first", "worker": "alpha"}).json()
    second = post_task(server, {"prompt": "second", "worker": "gamma"}).json()
    listed = httpx.get(f"{server}/tasks").json()
    ids = [t["id"] for t in listed]
    assert ids.index(second["id"]) < ids.index(first["id"])
    only_gamma = httpx.get(f"{server}/tasks", params={"worker": "gamma"}).json()
    assert [t["id"] for t in only_gamma] == [second["id"]]
    assert len(httpx.get(f"{server}/tasks", params={"limit": "1"}).json()) == 1
    assert httpx.get(f"{server}/tasks", params={"state": "cancelled"}).json() == []


def test_bad_list_parameters_are_400_naming_what_is_valid(server: str) -> None:
    state = httpx.get(f"{server}/tasks", params={"state": "done"})
    assert state.status_code == 400
    assert state.json()["error"] == '"done" is not a task state'
    assert "pending, running, completed, failed, cancelled" in state.json()["hint"]
    limit = httpx.get(f"{server}/tasks", params={"limit": "lots"})
    assert limit.status_code == 400
    assert limit.json()["error"] == 'limit "lots" is not a number from 1 to 1000'


def test_workers_are_listed_with_their_keys_masked(server: str) -> None:
    answer = httpx.get(f"{server}/workers")
    assert answer.status_code == 200
    workers = {w["name"]: w for w in answer.json()}
    assert sorted(workers) == ["alpha", "beta", "boxed", "gamma"]
    alpha = workers["alpha"]
    assert alpha["kind"] == "unmanaged"
    assert alpha["state"] in ("online", "busy")  # busy while the dispatcher sends it a task
    assert workers["beta"]["state"] == "offline"
    assert alpha["endpoint"].startswith("http://127.0.0.1:")
    assert alpha["started_at"] is not None
    assert workers["beta"]["started_at"] is None
    assert set(alpha) == {
        "name", "kind", "state", "error", "endpoint", "started_at", "container_id", "definition",
    }  # fmt: skip
    boxed = workers["boxed"]["definition"]["worker"]["docker"]
    assert (boxed["api_key"], boxed["token"], boxed["env"]) == (
        "***",
        "claude.default",
        {"MODE": "fast"},
    )
    assert "fallback" not in answer.text


def test_definitions_stored_with_a_token_in_them_are_redacted(tmp_path: Path) -> None:
    """A definition from an older version may hold a literal token; the API masks it."""
    home = make_home(tmp_path)
    store = open_sqlite(home / "mecha.db")
    written = {"name": "old", "docker": {"image": "x", "env": {"GH": TOKEN_SHAPED, "A": "b"}}}
    store.add_workers(
        [
            WorkerRecord(
                name="old", kind=WorkerKind.MANAGED, definition={"worker": written, "withheld": []}
            )
        ]
    )
    store.close()
    with ServeProcess(home) as serve:
        answer = httpx.get(f"{serve.url}/workers")
    [old] = answer.json()
    assert old["definition"]["worker"]["docker"]["env"] == {"GH": "[REDACTED]", "A": "b"}
    assert TOKEN_SHAPED not in answer.text


def test_without_a_worker_name_online_and_busy_workers_take_turns_by_name(
    tmp_path: Path, worker: InstantWorker
) -> None:
    home = make_home(tmp_path)
    names = ["delta", "alpha", "echo", "bravo", "charlie"]
    # charlie (in error) answers nothing, so the health loop cannot bring it back mid-test
    register(home, {n: f"endpoint: {worker.url if n != 'charlie' else DEAD}\n" for n in names})
    with ServeProcess(home) as serve:
        refused = post_task(serve.url, {"prompt": "anyone?"})
        assert refused.status_code == 503
        assert refused.json()["error"] == "no online workers"
        assert "mecha worker start NAME" in refused.json()["hint"]
        assert "alpha (offline)" in refused.json()["hint"]
        set_states(home, {"bravo": WorkerState.ONLINE, "delta": WorkerState.ONLINE}, worker.url)
        set_states(home, {"alpha": WorkerState.BUSY}, worker.url)
        set_states(home, {"charlie": WorkerState.ERROR})
        picked = [post_task(serve.url, {"prompt": f"p{i}"}).json()["worker"] for i in range(7)]
    assert picked == ["alpha", "bravo", "delta", "alpha", "bravo", "delta", "alpha"]


def test_with_no_worker_registered_the_hint_says_to_add_one(tmp_path: Path) -> None:
    with ServeProcess(make_home(tmp_path)) as serve:
        refused = post_task(serve.url, {"prompt": "anyone?"})
        named = post_task(serve.url, {"prompt": "hi", "worker": "x"})
    assert refused.status_code == 503
    assert "mecha worker add" in refused.json()["hint"]
    assert named.status_code == 404
    assert "no worker is registered" in named.json()["hint"]


def test_with_an_api_key_every_task_and_worker_route_needs_it(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    with ServeProcess(home, args=["--api-key", KEY]) as serve:
        calls = [
            ("POST", "/task"), ("GET", "/task/0123456789"), ("GET", "/tasks"), ("GET", "/workers"),
        ]  # fmt: skip
        for method, path in calls:
            refused = httpx.request(method, f"{serve.url}{path}", content=b'{"prompt": "x"}')
            assert refused.status_code == 401, path
            assert "API key" in refused.json()["error"]
        bearer = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{serve.url}/tasks", headers=bearer).status_code == 200
        assert httpx.get(f"{serve.url}/workers", headers={"X-API-Key": KEY}).status_code == 200
        # with the key, the request goes through to the checks that come after it
        assert post_task(serve.url, {"prompt": "x"}, **bearer).status_code == 503
        big = post_task(serve.url, b"x" * (2 * 1024 * 1024))
        assert big.status_code == 401  # the key is checked before the body is read


def test_the_event_shows_its_timeline(server: str) -> None:
    sent = post_github(server, pr_payload(number=31))
    assert sent.status_code == 202, sent.text
    shown = settled(server, sent.json()["id"])
    steps = [entry["step"] for entry in shown["timeline"]]
    assert steps[:2] == ["received", "matched"]
    assert shown["timeline"][1]["detail"] == "taken by alpha"
    assert shown["timeline"][0]["event_id"] == shown["id"]


def test_a_task_sent_through_the_api_reaches_its_worker(server: str, worker: InstantWorker) -> None:
    task = post_task(server, {"prompt": "deliver me", "worker": "alpha"}).json()
    deadline = time.monotonic() + 60
    while not any(r.id == task["id"] for r in worker.requests) and time.monotonic() < deadline:
        time.sleep(0.02)
    [received] = [r for r in worker.requests if r.id == task["id"]]
    assert received.prompt == "deliver me"
