"""A real `mecha serve` matching events to workers: fan-out, reasons, reloads, recovery."""

from __future__ import annotations

from pathlib import Path

import httpx

from mecha.event import Delivery
from mecha.store.sqlite.store import open_sqlite
from mecha.testing.serve_process import ServeProcess
from tests.e2e.serving import (
    add_worker,
    make_home,
    mecha_cli,
    post_github,
    pr_payload,
    send_event,
    settled,
)

REVIEWER = """  - source: github
    on: [pull_request.*]
    prompt: "Review {{.title}} (#{{.number}}) by {{.sender}}"
"""
LABELLER = """  - source: github
    on: [pull_request.opened]
    filter: {labels: bug, base_branch: [main, develop]}
    prompt: "{{if .draft}}draft{{else}}ready{{end}}: {{.title}}"
"""
PUSHER = """  - source: github
    on: [push]
    prompt: "{{.commits}}"
"""
NEEDS_DIFF = """  - source: github
    on: [pull_request.opened]
    prompt: "Diff:\\n{{.diff}}"
"""
HELD = """  - source: github
    on: [pull_request.opened]
    auto: false
    prompt: "manual {{.title}}"
"""


def test_one_event_fans_out_and_every_decision_is_explained(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    for name, rules in [("reviewer", REVIEWER), ("labeller", LABELLER), ("pusher", PUSHER),
                        ("needs-diff", NEEDS_DIFF), ("held", HELD)]:  # fmt: skip
        add_worker(home, name, rules)
    with ServeProcess(home) as server:
        answer = post_github(server.url, pr_payload(labels=("bug", "ui")))
        shown = settled(server.url, answer.json()["id"])
    assert shown["state"] == "matched"
    decisions = {m["worker"]: m for m in shown["matches"]}
    assert {w: d["outcome"] for w, d in decisions.items()} == {
        "reviewer": "matched", "labeller": "matched", "pusher": "not_matched",
        "needs-diff": "failed", "held": "held",
    }  # fmt: skip
    assert decisions["pusher"]["reason"] == (
        "rule 1: type pull_request.opened is not in on: [push]"
    )
    assert "uses .diff, which this event lacks" in decisions["needs-diff"]["reason"]
    prompts = {t["worker"]: t["prompt"] for t in shown["tasks"]}
    assert prompts == {
        "reviewer": "Review Fix the thing (#7) by mona",
        "labeller": "ready: Fix the thing",
    }
    assert {t["state"] for t in shown["tasks"]} == {"pending"}
    assert {t["dedup_key"] for t in shown["tasks"]} == {
        f"{shown['id']}:reviewer",
        f"{shown['id']}:labeller",
    }


def test_an_event_nobody_wants_is_skipped(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    add_worker(home, "pusher", PUSHER)
    with ServeProcess(home) as server:
        answer = post_github(server.url, pr_payload())
        assert answer.status_code == 202
        assert settled(server.url, answer.json()["id"])["state"] == "skipped"


def test_a_worker_added_while_serving_takes_the_next_event(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    with ServeProcess(home) as server:
        first = post_github(server.url, pr_payload(number=1)).json()["id"]
        assert settled(server.url, first)["state"] == "skipped"
        add_worker(home, "reviewer", REVIEWER)
        second = post_github(server.url, pr_payload(number=2)).json()["id"]
        shown = settled(server.url, second)
        assert shown["state"] == "matched"
        assert mecha_cli(home, "worker", "remove", "reviewer").returncode == 0
        third = post_github(server.url, pr_payload(number=3)).json()["id"]
        assert settled(server.url, third)["state"] == "skipped"


def test_events_left_unmatched_by_a_crash_are_matched_at_the_next_start(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    add_worker(home, "reviewer", REVIEWER)
    with ServeProcess(home):  # create the database, then stop
        pass
    store = open_sqlite(home / "mecha.db")
    [stored] = store.insert_events(
        [Delivery(source="github", type="pull_request.opened", delivery_id="left-behind",
                  actor="mona", attrs={"title": "T", "number": 3, "sender": "mona"})]
    )  # fmt: skip
    store.close()
    assert stored is not None
    with ServeProcess(home) as server:
        shown = settled(server.url, stored.id)
    assert shown["state"] == "matched"
    assert [t["prompt"] for t in shown["tasks"]] == ["Review T (#3) by mona"]


def test_a_killed_server_loses_no_acknowledged_event(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    add_worker(home, "reviewer", REVIEWER)
    server = ServeProcess(home)
    ids = [post_github(server.url, pr_payload(number=n)).json()["id"] for n in range(20)]
    server.kill()
    with ServeProcess(home) as again:
        states = {settled(again.url, event_id)["state"] for event_id in ids}
        tasks = httpx.get(f"{again.url}/events", params={"limit": 100}).json()
    assert states == {"matched"}
    assert len(tasks) == 20


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    server = ServeProcess(home)
    post_github(server.url, pr_payload())
    assert server.stop() == 0
    assert "INFO mecha.serve: stopped" in server.log()
    assert "Traceback" not in server.log()


def test_event_show_and_ls_print_the_decisions(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    add_worker(home, "pusher", PUSHER)
    add_worker(home, "reviewer", REVIEWER)
    with ServeProcess(home) as server:
        event_id = post_github(server.url, pr_payload()).json()["id"]
        settled(server.url, event_id)
    shown = mecha_cli(home, "event", "show", event_id[:8])
    assert shown.returncode == 0, shown.stderr
    assert "pusher: not_matched" in shown.stdout
    assert "type pull_request.opened is not in on: [push]" in shown.stdout
    assert "reviewer: matched → task" in shown.stdout
    listed = mecha_cli(home, "event", "ls")
    assert event_id[:12] in listed.stdout
    assert "pull_request.opened" in listed.stdout


def test_event_send_signs_with_the_configured_secret(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    payload = tmp_path / "pr.json"
    payload.write_bytes(pr_payload(number=77))
    with ServeProcess(home) as server:
        sent = send_event(home, payload, source="github", event="pull_request", url=server.url)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("202 ")
        listed = httpx.get(f"{server.url}/events").json()
    assert listed[0]["attrs"]["number"] == 77


def test_event_send_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    payload = tmp_path / "pr.json"
    payload.write_bytes(pr_payload())
    sent = mecha_cli(home, "event", "send", str(payload), "--event", "pull_request",
                     "--addr", "127.0.0.1:9")  # fmt: skip
    assert sent.returncode == 1
    assert "mecha serve" in sent.stderr
    assert "Traceback" not in sent.stderr


def test_event_send_speaks_gitlab_with_the_configured_token(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    payload = tmp_path / "mr.json"
    payload.write_text(
        '{"object_kind": "merge_request", "user": {"username": "root"},'
        ' "project": {"id": 3, "path_with_namespace": "group/app"},'
        ' "object_attributes": {"iid": 5, "title": "MR", "action": "open"}}'
    )
    with ServeProcess(home) as server:
        sent = send_event(home, payload, source="gitlab", event="merge_request", url=server.url)
        assert sent.returncode == 0, sent.stderr
        listed = httpx.get(f"{server.url}/events").json()
    assert (listed[0]["source"], listed[0]["type"]) == ("gitlab", "merge_request.open")
    assert listed[0]["attrs"]["number"] == 5
