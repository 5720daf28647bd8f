"""Comment commands through the pipeline, from GitHub's own payload (the recorded
``issue_comment.created`` sample, edited): a ``/review`` from a member runs with its
arguments; one from an outsider, or from another app's bot, does not, and the timeline
says why."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mecha.forges.github.webhook import parse_github
from mecha.samples import load
from mecha.store import Store
from mecha.task import Task
from mecha.timeline import Step
from tests.unit.engine.fakes import Worker, eventually, register

REVIEWER = {
    "name": "reviewer", "endpoint": "http://127.0.0.1:9/", "rate_limit": {"per_second": 0},
    "events": [{"source": "github", "command": "/review",
                "prompt": "review #{{.number}} for {{.comment_author}}: {{.command_args}}"}],
}  # fmt: skip


def comment(number: int, body: str, *, login: str, association: str, kind: str = "User") -> Any:
    """The sample delivery with this comment, author and sender."""
    sample = load("github", "issue_comment.created")
    payload = json.loads(sample.body)
    payload["issue"]["number"] = number
    payload["comment"]["body"] = body
    payload["comment"]["author_association"] = association
    payload["comment"]["user"]["login"] = login
    payload["sender"] = {**payload["sender"], "login": login, "type": kind}
    headers = {k.lower(): v for k, v in sample.headers.items()}
    headers["x-github-delivery"] = f"d-{number}"
    return parse_github(json.dumps(payload).encode(), headers)


def test_a_member_runs_a_command_an_outsider_and_a_bot_do_not(store: Store, tmp_path: Path) -> None:
    from tests.unit.engine.rig import Rig

    register(store, REVIEWER)
    worker = Worker()
    deliveries = [
        comment(1, "/review focus on the parser", login="mona", association="MEMBER"),
        comment(2, "/review please", login="stranger", association="NONE"),
        comment(3, "/review", login="other-app[bot]", association="NONE", kind="Bot"),
        comment(4, "/reviewer", login="mona", association="MEMBER"),
        comment(5, "/review", login="hubot[bot]", association="MEMBER", kind="User"),
    ]

    async def main() -> list[Task]:
        async with Rig(store, tmp_path, send=worker.send) as rig:
            events = [await rig.pipeline.receive(d) for d in deliveries]
            await rig.pipeline.finish_matching()
            await eventually(lambda: len(worker.sent) == 2, "two commands sent")
            assert all(e is not None for e in events)
            return list(worker.sent)

    sent = asyncio.run(main())
    assert sorted(t.prompt for t in sent) == [
        "review #1 for mona: focus on the parser",
        "review #5 for hubot[bot]: ",  # a user, whatever its login says
    ]
    details = {}
    for event in store.list_events(limit=10):
        [step] = [e for e in store.list_timeline(event_id=event.id)
                  if e.step in (Step.MATCHED, Step.SKIPPED)]  # fmt: skip
        details[event.attrs["number"]] = step.detail
    assert "refused by reviewer: rule 1: trust: the comment's author is NONE" in details[2]
    assert "refused by reviewer: rule 1: trust: the sender other-app[bot] is a bot" in details[3]
    assert details[4] == "no worker takes it"  # not the command: no trust question
    assert details[1] == "taken by reviewer"


def test_what_mechas_own_account_does_starts_no_worker(store: Store, tmp_path: Path) -> None:
    from tests.unit.engine.rig import Rig

    register(store, REVIEWER)
    worker = Worker()

    async def main() -> None:
        async with Rig(store, tmp_path, send=worker.send) as rig:
            rig.pipeline.own["github"] = "Mecha-Bot"  # as the forge spells it
            await rig.pipeline.receive(
                comment(1, "/review", login="mecha-bot", association="OWNER")
            )
            await rig.pipeline.receive(comment(2, "/review", login="mona", association="OWNER"))
            await rig.pipeline.finish_matching()
            await eventually(lambda: len(worker.sent) == 1, "mona's command sent")

    asyncio.run(main())
    assert [t.prompt for t in worker.sent] == ["review #2 for mona: "]
    [own] = [e for e in store.list_events(limit=10) if e.attrs["number"] == 1]
    [step] = [e for e in store.list_timeline(event_id=own.id) if e.step == Step.SKIPPED]
    assert "trust: the sender mecha-bot is Mecha's own github account" in step.detail
