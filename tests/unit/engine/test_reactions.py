"""👀 on a command's comment as its task starts, through the engine: the pipeline, the
dispatcher claiming the task, write-back planning the reaction in the ledger, GitHubWriter,
and the forge emulator on 127.0.0.1 (what it received is what is asserted). The answer
goes in the worker's sticky comment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mecha.event import Delivery
from mecha.forges.github.auth import GitHubAuth
from mecha.forges.github.write import GitHubWriter
from mecha.policy.writes import WriteState
from mecha.result import Comment, TaskResult
from mecha.runtimes.contract import WorkerFailure
from mecha.store import Store
from mecha.task import TaskState
from mecha.testing.forge.api import ForgeEmulator
from mecha.timeline import Step
from tests.unit.engine.comments import (
    ISSUE,
    OWNER,
    PULL,
    PULL_BASE,
    PULL_HEAD,
    REPO,
    issue_comment,
    review,
    review_comment,
)
from tests.unit.engine.fakes import Worker, eventually, register, transient
from tests.unit.engine.rig import Rig

TOKEN = "ghp_" + "R" * 36
REACTS = {"comment": {"allow": True}, "reactions": {"allow": True}}
Answer = TaskResult | WorkerFailure


def worker(name: str, policy: dict[str, Any], **rule: Any) -> dict[str, Any]:
    """A worker with one rule (a ``command: /review`` unless ``rule`` says otherwise)."""
    rule = rule or {"command": "/review"}
    return {
        "name": name, "endpoint": "http://127.0.0.1:9/", "rate_limit": {"per_second": 0},
        "events": [{"source": "github", "prompt": "review: {{.comment}}", **rule}],
        "policy": policy,
    }  # fmt: skip


def said(text: str) -> TaskResult:
    return TaskResult(output="", comment=Comment(body=text))


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    """GitHub wanting TOKEN, with the samples' issue #1 and pull request #2."""
    with ForgeEmulator(github_token=TOKEN) as emulator:
        emulator.add_pull(OWNER, REPO, PULL, base_sha=PULL_BASE, head_sha=PULL_HEAD)
        emulator.github.writes.add_issue(OWNER, REPO, ISSUE, title="Spelling error")
        yield emulator


def run(store: Store, home: Path, forge: ForgeEmulator, deliveries: list[Delivery],
        *answers: Answer) -> Worker:  # fmt: skip
    """Deliver each in turn; return once its tasks are final and the writes settled."""
    sender = Worker(*answers)

    async def main() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            github = GitHubWriter(http, api_url=forge.github_url, auth=GitHubAuth.token(TOKEN))
            async with Rig(store, home, send=sender.send, writers={"github": github}) as rig:
                for delivered in deliveries:
                    event = await rig.pipeline.receive(delivered)
                    assert event is not None
                    await rig.pipeline.finish_matching()

                    def settled(event_id: str = event.id) -> bool:
                        tasks = store.list_tasks(event_id=event_id)
                        writes = store.list_writes(event_id=event_id)
                        return (
                            bool(tasks)
                            and all(t.final for t in tasks)
                            and all(
                                w.state not in (WriteState.PLANNED, WriteState.CALLING)
                                for w in writes
                            )
                        )

                    await eventually(settled, f"event {event.id} settled")
                await rig.writeback.drain()

    asyncio.run(main())
    return sender


def reaction_posts(forge: ForgeEmulator) -> list[str]:
    return [r.path for r in forge.requests
            if r.method == "POST" and r.path.endswith(("/reactions", "/graphql"))]  # fmt: skip


def test_a_retried_command_task_reacts_once_and_answers_in_the_sticky_comment(
    store: Store, tmp_path: Path, forge: ForgeEmulator
) -> None:
    register(store, worker("reviewer", REACTS))
    first = forge.github.writes.add_comment(OWNER, REPO, ISSUE, "/review", login="mona")
    second = forge.github.writes.add_comment(OWNER, REPO, ISSUE, "/review again", login="mona")
    # the first task fails once and is claimed again: two claims, one 👀
    sent = run(store, tmp_path, forge, [issue_comment(first, "/review"),
                                        issue_comment(second, "/review again")],
               transient(), said("first answer"), said("second answer"))  # fmt: skip
    assert len(sent.sent) == 3
    reactions = forge.github.reactions
    assert reactions.reactions("issue_comment", first) == [("mecha-bot", "eyes")]
    assert reactions.reactions("issue_comment", second) == [("mecha-bot", "eyes")]
    assert len(reaction_posts(forge)) == 2  # one per comment: the retry planned no second
    ledger = [w for w in store.list_writes() if w.write.action == "reaction"]
    assert sorted(w.state for w in ledger) == [WriteState.DONE, WriteState.DONE]
    assert all(t.state is TaskState.COMPLETED for t in store.list_tasks())
    # the answers go in the worker's one sticky comment, edited by the second
    ours = [c for c in forge.github.writes.comments(OWNER, REPO, ISSUE) if c.login == "mecha-bot"]
    assert len(ours) == 1
    assert ours[0].body.startswith("second answer")


def test_no_reaction_without_the_policy_or_for_a_task_of_another_rule(
    store: Store, tmp_path: Path, forge: ForgeEmulator
) -> None:
    register(
        store,
        worker("acks", REACTS),
        worker("quiet", {"comment": {"allow": True}}),  # a command rule, reactions not allowed
        worker("plain", REACTS, on=["issue_comment.created"]),  # allowed, but no command
    )
    number = forge.github.writes.add_comment(OWNER, REPO, ISSUE, "/review", login="mona")
    run(store, tmp_path, forge, [issue_comment(number, "/review")], said("ok"))
    tasks = store.list_tasks()
    assert sorted(t.worker for t in tasks) == ["acks", "plain", "quiet"]
    assert all(t.state is TaskState.COMPLETED for t in tasks)
    ledger = [w.write.worker for w in store.list_writes() if w.write.action == "reaction"]
    assert ledger == ["acks"]
    assert len(reaction_posts(forge)) == 1
    assert forge.github.reactions.reactions("issue_comment", number) == [("mecha-bot", "eyes")]


def test_a_review_is_reacted_to_through_graphql_and_a_review_comment_through_rest(
    store: Store, tmp_path: Path, forge: ForgeEmulator
) -> None:
    register(store, worker("reviewer", REACTS))
    seeded = forge.github.reactions.add_review(OWNER, REPO, PULL, "/review", login="mona")
    line = forge.github.reactions.add_review_comment(OWNER, REPO, "/review here", login="mona")
    run(store, tmp_path, forge, [review(seeded.id, f"PRR_{seeded.id}", "/review"),
                                 review_comment(line, "/review here")], said("ok"))  # fmt: skip
    assert forge.github.reactions.reactions("review", seeded.id) == [("mecha-bot", "eyes")]
    assert forge.github.reactions.reactions("review_comment", line) == [("mecha-bot", "eyes")]
    assert sorted(reaction_posts(forge)) == [
        "/github/graphql",
        f"/github/repos/{OWNER}/{REPO}/pulls/comments/{line}/reactions",
    ]


def test_a_reaction_the_forge_refuses_fails_that_write_never_the_task(
    store: Store, tmp_path: Path, forge: ForgeEmulator
) -> None:
    register(store, worker("reviewer", REACTS))
    number = forge.github.writes.add_comment(OWNER, REPO, ISSUE, "/review", login="mona")
    forge.fail(r"/reactions$", 403, method="POST", times=None)
    run(store, tmp_path, forge, [issue_comment(number, "/review")], said("reviewed"))
    [task] = store.list_tasks()
    assert task.state is TaskState.COMPLETED
    writes = {w.write.action: w for w in store.list_writes()}
    assert writes["reaction"].state is WriteState.FAILED
    assert writes["comment"].state is WriteState.DONE
    steps = store.list_timeline(event_id=task.event_id)
    assert any(s.step == Step.WRITE_FAILED and s.detail.startswith("reaction") for s in steps)
