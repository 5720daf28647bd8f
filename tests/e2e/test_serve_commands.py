"""Comment commands in a real `mecha serve` against the forge emulator: a member's
``/review`` runs; the same comment from the account Mecha writes as (learnt from GitHub's
``GET /user``) starts nothing, so the bot never answers itself."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from mecha.samples import load
from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import endpoint_worker
from tests.e2e.serving import make_home, post_github
from tests.e2e.writing import FAST_WRITES, GITHUB_TOKEN

RULES = """  - source: github
    command: /review
    prompt: "review #{{.number}} for {{.comment_author}}: {{.command_args}}"
"""


def comment(login: str, text: str, number: int) -> bytes:
    payload = json.loads(load("github", "issue_comment.created").body)
    payload["issue"]["number"] = number
    payload["comment"].update(body=text, author_association="OWNER")
    payload["comment"]["user"]["login"] = login
    payload["sender"] = {**payload["sender"], "login": login, "type": "User"}
    return json.dumps(payload).encode()


def test_mechas_own_comment_starts_nothing_a_members_command_runs(tmp_path: Path) -> None:
    home = make_home(tmp_path, config=FAST_WRITES, github_token=GITHUB_TOKEN)
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge, InstantWorker() as worker:
        endpoint_worker(home, "reviewer", worker.url, rules=RULES)
        with ServeProcess(home, env={"GITHUB_API_URL": forge.github_url}) as serve:
            deadline = time.monotonic() + 60
            while "Mecha writes as mecha-bot" not in serve.log():
                assert time.monotonic() < deadline, serve.log()
                time.sleep(0.05)
            own = post_github(serve.url, comment("mecha-bot", "/review again", 1),
                              event="issue_comment")  # fmt: skip
            member = post_github(serve.url, comment("mona", "/review the parser", 2),
                                 event="issue_comment")  # fmt: skip
            assert own.status_code == member.status_code == 202
            [received] = worker.wait_for(1)
            shown = httpx.get(f"{serve.url}/event/{own.json()['id']}", timeout=10).json()
    assert received.prompt == "review #2 for mona: the parser"
    assert shown["state"] == "skipped"
    [decision] = shown["matches"]
    assert "Mecha's own github account" in decision["reason"]


GITLAB_RULES = """  - source: gitlab
    command: /review
    prompt: "review !{{.number}} for {{.comment_author}}: {{.command_args}}"
"""
REACTS = "policy:\n  comment: {allow: true}\n  reactions: {allow: true}\n"


def note_delivery(url: str, note_id: int, author: str, author_id: int, text: str) -> str:
    """POST the GitLab note sample as ``author``'s ``text``; the event's id."""
    from tests.e2e.serving import GITLAB_TOKEN as WEBHOOK

    sample = load("gitlab", "note")
    payload = json.loads(sample.body)
    payload["object_attributes"].update(id=note_id, note=text, author_id=author_id)
    payload["user"].update(id=author_id, username=author)
    unique = f"note-{note_id}"
    headers = {**sample.headers, "X-Gitlab-Token": WEBHOOK, "X-Gitlab-Event-UUID": unique,
               "Idempotency-Key": unique}  # fmt: skip
    answer = httpx.post(f"{url}/webhook/gitlab", content=json.dumps(payload).encode(),
                        headers=headers, timeout=30)  # fmt: skip
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_a_gitlab_developers_command_runs_with_a_reaction_a_reporters_is_refused(
    tmp_path: Path,
) -> None:
    from tests.e2e.writing import GITLAB_TOKEN, writes_settled

    with ForgeEmulator(gitlab_token=GITLAB_TOKEN, github_token=GITHUB_TOKEN) as forge:
        forge.add_merge_request("gitlab-org/gitlab-test", 1, project_id=5, base_sha="1a" * 20,
                                head_sha="562e173be03b8ff2efb05345d12df18815438a4b")  # fmt: skip
        people = forge.gitlab.people
        dev, rep = people.add_member(5, "dev", 30), people.add_member(5, "rep", 20)
        asked = forge.gitlab.add_note(5, 1, "/review the parser", author="dev")
        refused = forge.gitlab.add_note(5, 1, "/review", author="rep")
        home = make_home(tmp_path, config=FAST_WRITES, github_token=GITHUB_TOKEN,
                         gitlab_token=GITLAB_TOKEN, gitlab_url=forge.gitlab_url)  # fmt: skip
        with InstantWorker() as worker:
            worker.set(result={"comment": {"body": "Reviewed."}})
            endpoint_worker(home, "reviewer", worker.url, rules=GITLAB_RULES, extra=REACTS)
            with ServeProcess(home, env={"GITHUB_API_URL": forge.github_url}) as serve:
                ran = note_delivery(serve.url, asked, "dev", dev, "/review the parser")
                shown = writes_settled(serve.url, ran, count=2)
                no = note_delivery(serve.url, refused, "rep", rep, "/review")
                deadline = time.monotonic() + 60
                while (other := httpx.get(f"{serve.url}/event/{no}", timeout=10).json())[
                        "state"] == "received":  # fmt: skip
                    assert time.monotonic() < deadline, other
                    time.sleep(0.05)
            [received] = worker.wait_for(1)
        awards = people.awarded(5, asked)
        ours = [n for n in forge.gitlab.notes(5, 1) if n.author == "mecha-bot"]
    assert received.prompt == "review !1 for dev: the parser"
    assert sorted(w["action"] for w in shown["writes"]) == ["comment", "reaction"]
    assert awards == [("mecha-bot", "eyes")]
    assert len(ours) == 1 and ours[0].body.startswith("Reviewed.")
    assert other["state"] == "skipped"
    [decision] = other["matches"]
    assert "the note's author is Reporter (20) on this GitLab project" in decision["reason"]
