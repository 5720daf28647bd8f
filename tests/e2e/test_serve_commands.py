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
