"""The operator's action routes on a real `mecha serve` (``server/actions_api.py``): retry
and cancel a task, replay an event, retry its writes, stop and start a worker. Each shows
on the timeline with who did it; each refusal is JSON with a hint and the right status."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from mecha.store.sqlite.store import open_sqlite
from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.instant_worker import Behaviour, InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, RULE, endpoint_worker, timeline, wait_task
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload
from tests.e2e.writing import BASE, FAST_WRITES, GITHUB_TOKEN, HEAD, details, writes_settled
from tests.fake_upstream import Route, ThreadedUpstream, fixture, json_reply

BY_API = "API (127.0.0.1)"


def post(url: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", timeout=60, **kwargs)


def send_pr(url: str) -> str:
    answer = post_github(url, pr_payload())
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def until(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def test_retry_and_cancel_through_the_routes_show_on_the_timeline_with_who(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        worker.script([Behaviour(status=400)])  # refused for good: the task fails
        endpoint_worker(home, "reviewer", worker.url)
        endpoint_worker(home, "parked", "http://127.0.0.1:9", online=False)  # never sends
        with ServeProcess(home) as server:
            url = server.url
            event_id = send_pr(url)
            tasks = wait_task(url, event_id, states=("failed",))
            failed = next(t for t in tasks if t["worker"] == "reviewer")
            parked = next(t for t in tasks if t["worker"] == "parked")
            retried = post(url, f"/task/{failed['id']}/retry")
            done = wait_task(url, event_id, states=("completed",))
            again = post(url, f"/task/{failed['id']}/retry")
            cancelled = post(url, f"/task/{parked['id']}/cancel", json={"by": "alice"})
            cancel_again = post(url, f"/task/{parked['id']}/cancel")
            unknown = post(url, "/task/0123456789abcdef/retry")
            bad_body = post(url, f"/task/{parked['id']}/retry", content=b"[1, 2]")
            steps = timeline(url, event_id)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["state"], retried.json()["attempts"]) == ("pending", 0)
    assert [t["state"] for t in done if t["worker"] == "reviewer"] == ["completed"]
    assert again.status_code == 409
    assert "only failed or cancelled tasks can be retried" in again.json()["error"]
    assert again.json()["hint"]
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancel_again.status_code == 409 and "mecha task retry" in cancel_again.json()["hint"]
    assert unknown.status_code == 404 and unknown.json()["error"]
    assert bad_body.status_code == 400 and "not a JSON object" in bad_body.json()["error"]
    by_hand = [(s["step"], s["task_id"], s["detail"]) for s in steps
               if s["detail"].startswith("by hand")]  # fmt: skip
    assert by_hand == [
        ("requeued", failed["id"], f"by hand: {BY_API}"),
        ("cancelled", parked["id"], f"by hand: alice via {BY_API}"),
    ]


def test_the_action_routes_need_the_api_key(tmp_path: Path) -> None:
    key = "k" * 32
    home = make_home(tmp_path, config=FAST + f"api_key: {key}\n")
    (home / "config.yml").chmod(0o600)
    with ServeProcess(home) as server:
        refused = post(server.url, "/worker/nobody/stop")
        let_in = post(server.url, "/worker/nobody/stop", headers={"X-API-Key": key})
    assert refused.status_code == 401
    assert let_in.status_code == 404 and "nobody" in let_in.json()["error"]


REVIEW_PUSHES = """  - source: github
    on: [push]
    prompt: "Pushed"
"""


def test_a_replay_is_matched_by_todays_workers_and_is_no_duplicate(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        endpoint_worker(home, "reviewer", worker.url)
        with ServeProcess(home) as server:
            url = server.url
            event_id = send_pr(url)
            [first_task] = wait_task(url, event_id, states=("completed",))
            # the worker's filter changes after the event arrived; a new worker comes
            changed = home / "reviewer.yml"
            changed.write_text(f"name: reviewer\nendpoint: {worker.url}\nevents:\n{REVIEW_PUSHES}")
            replaced = mecha_cli(home, "worker", "add", "--replace", str(changed))
            assert replaced.returncode == 0, replaced.stderr
            endpoint_worker(home, "triager", worker.url)
            replayed = post(url, f"/event/{event_id}/replay")
            again = post(url, f"/event/{event_id}/replay", json={"by": "bob"})
            by_cli = mecha_cli(home, "event", "replay", event_id[:8], "--addr",
                               url.removeprefix("http://"))  # fmt: skip
            made = [replayed.json()["id"], again.json()["id"]]
            tasks = [wait_task(url, new, states=("completed",)) for new in made]
            shown = httpx.get(f"{url}{replayed.headers['location']}", timeout=30).json()
            original = timeline(url, event_id)
            missing = post(url, "/event/0123456789abcdef/replay")
        show = mecha_cli(home, "event", "show", made[0])
    assert first_task["worker"] == "reviewer"
    assert (replayed.status_code, again.status_code) == (202, 202), replayed.text
    assert replayed.headers["location"] == f"/event/{made[0]}"
    assert len(set(made)) == 2 and event_id not in made
    assert [[t["worker"] for t in ts] for ts in tasks] == [["triager"], ["triager"]]
    assert {m["worker"]: m["outcome"] for m in shown["matches"]}["triager"] == "matched"
    assert {m["worker"]: m["outcome"] for m in shown["matches"]}["reviewer"] != "matched"
    assert shown["attrs"]["replay_of"] == event_id and shown["attrs"]["replayed_by"] == BY_API
    assert shown["delivery_id"].startswith("replay-")
    assert ("replay", f"replay of {event_id} by {BY_API}") in [
        (s["step"], s["detail"]) for s in shown["timeline"]
    ]
    replays = [s["detail"] for s in original if s["step"] == "replay"]
    assert replays[:2] == [f"replayed as {made[0]} by {BY_API}",
                           f"replayed as {made[1]} by bob via {BY_API}"]  # fmt: skip
    assert by_cli.returncode == 0, by_cli.stderr
    assert "(mecha event replay) via API (127.0.0.1)" in replays[2]
    assert "replayed event" in by_cli.stdout
    assert missing.status_code == 404
    assert f"replay:   of event {event_id}, by {BY_API}" in show.stdout


def test_write_retry_reopens_a_dead_lettered_write(tmp_path: Path) -> None:
    comments = "/github/repos/octo/app/issues/7/comments"
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge, InstantWorker() as worker:
        home = make_home(tmp_path, config=FAST_WRITES, github_token=GITHUB_TOKEN)
        forge.add_pull("octo", "app", 7, base_sha=BASE, head_sha=HEAD)
        worker.set(result={"comment": {"body": "late but once"}})
        endpoint_worker(home, "reviewer", worker.url, extra="policy:\n  comment: {allow: true}\n")
        forge.fail(comments + "$", 502, method="POST", times=5)  # GitHub is down for a while
        with ServeProcess(home, env={"GITHUB_API_URL": forge.github_url}) as server:
            url = server.url
            event_id = send_pr(url)
            [dead] = writes_settled(url, event_id, timeout=30)["writes"]
            wrong_key = post(url, f"/event/{event_id}/writes/retry", json={"key": "nope"})
            retried = post(url, f"/event/{event_id}/writes/retry", json={"key": dead["key"]})
            shown = until(
                lambda: (s := writes_settled(url, event_id))["writes"][0]["state"] == "done" and s,
                "the retried write was not made",
            )
            nothing = post(url, f"/event/{event_id}/writes/retry")
    assert dead["state"] == "dead-letter"
    assert wrong_key.status_code == 404 and "nope" in wrong_key.json()["error"]
    assert retried.status_code == 200, retried.text
    assert [(w["key"], w["state"]) for w in retried.json()] == [(dead["key"], "planned")]
    assert f"comment: tried again by hand: {BY_API}" in details(shown, "write retry")
    assert nothing.status_code == 409 and "no failed or dead-lettered" in nothing.json()["error"]


def test_stop_and_start_an_unmanaged_worker(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST)
    with InstantWorker() as worker:
        endpoint_worker(home, "reviewer", worker.url)
        endpoint_worker(home, "gone", "http://127.0.0.1:9", online=False)
        with ServeProcess(home) as server:
            url = server.url
            stopped = post(url, "/worker/reviewer/stop")
            stop_again = post(url, "/worker/reviewer/stop")
            event_id = send_pr(url)
            waiting = wait_task(url, event_id, states=("pending",))
            time.sleep(0.5)  # several polls: a stopped worker is sent nothing
            sent_while_stopped = len(worker.requests)
            started = post(url, "/worker/reviewer/start")
            done = wait_task(url, event_id, states=("completed",))
            start_again = post(url, "/worker/reviewer/start")
            dead = post(url, "/worker/gone/start")
            unknown = post(url, "/worker/nobody/start")
    assert stopped.status_code == 200 and stopped.json()["state"] == "offline"
    assert stop_again.status_code == 409 and "offline already" in stop_again.json()["error"]
    assert waiting[0]["state"] == "pending" and sent_while_stopped == 0
    assert started.status_code == 200 and started.json()["state"] == "online"
    assert done[0]["state"] == "completed"
    assert start_again.status_code == 409 and start_again.json()["hint"]
    assert dead.status_code == 502 and "GET http://127.0.0.1:9/health" in dead.json()["error"]
    assert unknown.status_code == 404
    store = open_sqlite(home / "mecha.db")
    try:
        assert store.get_worker("gone").state.value == "error"
        own = [(e.step, e.detail) for e in store.list_timeline(worker="reviewer")]
        failed = [e.detail for e in store.list_timeline(worker="gone")]
    finally:
        store.close()
    assert own == [
        ("worker stopped", f"recorded offline; by hand: {BY_API}"),
        ("worker started", f"GET {worker.url.rstrip('/')}/health answered 200: online; "
                           f"by hand: {BY_API}"),
    ]  # fmt: skip
    assert len(failed) == 1 and failed[0].startswith("start failed: gone is not started")


def test_stop_and_start_an_adapter_worker_in_serve(tmp_path: Path) -> None:
    routes: dict[str, Route] = {
        "GET /v1/models": json_reply({"object": "list", "data": []}),
        "POST /v1/chat/completions": lambda seen: json_reply(fixture("openai/chat.json")),
    }
    home = make_home(tmp_path, config=FAST)
    with ThreadedUpstream(routes) as upstream:
        path = home / "gpt.yml"
        path.write_text(
            f"name: gpt\nadapter:\n  type: openai\n  upstream: {upstream.url}\n  model: m\n"
            f"  api_key: sk-test-key-0123456789\n  stream: false\nevents:\n{RULE}",
            encoding="utf-8",
        )
        assert mecha_cli(home, "worker", "add", str(path)).returncode == 0
        with ServeProcess(home) as server:
            url = server.url
            before = until(lambda: online(url, "gpt"), "the adapter did not start")
            running = post(url, "/worker/gpt/start")
            stopped = post(url, "/worker/gpt/stop")
            old_shim = httpx_refused(before["endpoint"])
            event_id = send_pr(url)
            time.sleep(0.5)  # several polls: a stopped adapter is sent nothing
            asked_while_stopped = sum(1 for s in upstream.seen if "chat" in s.path)
            waiting = wait_task(url, event_id, states=("pending",))
            started = post(url, "/worker/gpt/start")
            done = wait_task(url, event_id, states=("completed",))
    assert running.status_code == 409 and "adapter runs already" in running.json()["error"]
    assert stopped.status_code == 200 and stopped.json()["state"] == "offline"
    assert old_shim and asked_while_stopped == 0 and waiting[0]["state"] == "pending"
    assert started.status_code == 200, started.text
    assert started.json()["state"] == "online" and started.json()["endpoint"]
    assert done[0]["state"] == "completed"


def online(url: str, name: str) -> dict[str, Any] | None:
    listed = httpx.get(f"{url}/workers", timeout=30).json()
    found: dict[str, Any] = next(w for w in listed if w["name"] == name)
    return found if found["state"] == "online" else None


def httpx_refused(endpoint: str) -> bool:
    """Whether nothing answers at ``endpoint`` any more (the adapter was stopped)."""
    try:
        httpx.get(f"{endpoint}/health", timeout=10)
    except httpx.HTTPError:
        return True
    return False
