"""Write-back end to end in one process: a delivery through the pipeline, a fake worker's
answer, the worker's policy, the ledger, GitHubWriter and the forge emulator on 127.0.0.1
(what the emulator received is what is asserted)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mecha.forges.github.auth import GitHubAuth
from mecha.forges.github.write import GitHubWriter
from mecha.forges.writer import Writer
from mecha.policy.writes import WriteState
from mecha.result import Comment, Labels, Status, TaskResult
from mecha.store import Store, TaskUpdate, WriteRecord
from mecha.task import Task, TaskState
from mecha.testing.forge.api import ForgeEmulator, Recorded
from mecha.timeline import Step
from mecha.worker.kind import WorkerState
from tests.unit.engine.fakes import (
    BASE,
    DEADLINE,
    HEAD,
    Worker,
    definition,
    delivery,
    eventually,
    register,
    turns,
)
from tests.unit.engine.rig import FAST_WRITES, Rig

TOKEN = "ghp_" + "E" * 36
ISSUE = "/github/repos/octo/hello/issues/7"
STATUSES = f"/github/repos/octo/hello/statuses/{HEAD}"
_OPEN = (WriteState.PLANNED, WriteState.CALLING)
REMARK = TaskResult(output="", comment=Comment(body="Looks fine to me."))
ANSWER = TaskResult(
    output="the whole review",
    comment=Comment(body="Looks fine to me."),
    labels=Labels(add=("bug", "wip")),
    status=Status(state="success", description="no problems found"),
)
EVERYTHING = {
    "comment": {"allow": True, "max_length": 2000},
    "labels": {"allow": True, "allowed": ["bug", "wip"]},
    "status": {"allow": True},
}


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    """GitHub, wanting TOKEN, with pull request octo/hello#7 at HEAD."""
    with ForgeEmulator(github_token=TOKEN) as emulator:
        emulator.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD)
        yield emulator


class Outcome:
    """What one delivery came to: its task and its writes, once all are final."""

    def __init__(self, task: Task, writes: list[WriteRecord], counts: dict[str, int]) -> None:
        self.task = task
        self.writes = {w.write.action: w for w in writes}
        self.counts = counts


def written(forge: ForgeEmulator) -> list[Recorded]:
    """Every request that changed something on the forge."""
    return [r for r in forge.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")]


def sent(request: Recorded) -> Any:
    return json.loads(request.body)


def review(
    store: Store,
    home: Path,
    forge: ForgeEmulator,
    policy: dict[str, Any],
    *,
    answer: TaskResult = ANSWER,
    credentials: bool = True,
    writes: int = 1,
) -> Outcome:
    """Register a reviewer with ``policy``, deliver a pull request, let the fake worker
    answer ``answer``; return once its task and ``writes`` writes are final."""
    register(store, definition("reviewer", policy=policy))
    worker = Worker(answer)

    async def main() -> Outcome:
        async with httpx.AsyncClient(trust_env=False) as http:
            github = GitHubWriter(http, api_url=forge.github_url, auth=GitHubAuth.token(TOKEN))
            preview = GitHubWriter(http, api_url=forge.github_url, auth=GitHubAuth.token(""))
            writers: dict[str, Writer | None] = {"github": github if credentials else None}
            async with Rig(
                store, home, send=worker.send, writers=writers, previews={"github": preview}
            ) as rig:
                event = await rig.pipeline.receive(delivery())
                assert event is not None

                def settled() -> Outcome | None:
                    tasks = store.list_tasks(event_id=event.id)
                    found = store.list_writes(event_id=event.id)
                    if len(tasks) != 1 or not tasks[0].final or len(found) < writes:
                        return None
                    if any(w.state in _OPEN for w in found):
                        return None
                    return Outcome(tasks[0], found, rig.writeback.counts)

                return await eventually(settled, f"{writes} writes settled")

    return asyncio.run(main())


def steps(store: Store, task: Task, step: str) -> list[str]:
    return [e.detail for e in store.list_timeline(task_id=task.id) if e.step == step]


def test_a_results_comment_labels_and_status_reach_the_forge(
    store: Store, user_home: Path, forge: ForgeEmulator
) -> None:
    outcome = review(store, user_home, forge, EVERYTHING, writes=3)
    assert outcome.task.state.value == "completed"
    assert {a: w.state for a, w in outcome.writes.items()} == {
        "comment": WriteState.DONE, "labels": WriteState.DONE, "status": WriteState.DONE,
    }  # fmt: skip
    comment, labels, status = written(forge)
    assert (comment.method, comment.path) == ("POST", f"{ISSUE}/comments")
    assert sent(comment)["body"].startswith("Looks fine to me.\n\n<!-- mecha:")
    assert (labels.path, sent(labels)) == (f"{ISSUE}/labels", {"labels": ["bug", "wip"]})
    assert (status.path, sent(status)) == (
        STATUSES,
        {"state": "success", "description": "no problems found", "context": "mecha/reviewer"},
    )
    assert {r.headers["authorization"] for r in forge.requests} == {f"Bearer {TOKEN}"}
    assert forge.github.writes.labels("octo", "hello", 7) == ["bug", "wip"]
    [made] = forge.github.writes.comments("octo", "hello", 7)
    assert outcome.writes["comment"].remote_id == str(made.id)
    assert outcome.counts["written"] == 3


def test_what_the_policy_denies_is_not_written(
    store: Store, user_home: Path, forge: ForgeEmulator
) -> None:
    policy = {
        "comment": {"allow": True},
        "labels": {"allow": True, "allowed": ["bug"]},
        "status": {"allow": False},
    }
    outcome = review(store, user_home, forge, policy, writes=2)
    assert sorted(outcome.writes) == ["comment", "labels"]
    assert [r.path for r in written(forge)] == [f"{ISSUE}/comments", f"{ISSUE}/labels"]
    assert sent(written(forge)[1]) == {"labels": ["bug"]}
    assert not any(r.path.startswith("/github/repos/octo/hello/statuses") for r in forge.requests)
    assert forge.github.writes.labels("octo", "hello", 7) == ["bug"]
    denied = [d for d in steps(store, outcome.task, Step.POLICY) if d.startswith("denied: ")]
    assert len(denied) == 2
    assert any('"wip"' in d for d in denied) and any("status" in d for d in denied)
    assert outcome.counts["denied"] == 2


def test_a_forge_failure_is_tried_again_then_written_once(
    store: Store, user_home: Path, forge: ForgeEmulator
) -> None:
    forge.fail(r"/issues/7/comments$", 502, method="POST", times=1)
    outcome = review(store, user_home, forge, {"comment": {"allow": True}}, answer=REMARK)
    record = outcome.writes["comment"]
    assert (record.state, record.attempts) == (WriteState.DONE, 2)
    posts = [r for r in forge.requests if r.method == "POST"]
    assert len(posts) == 2
    assert len(forge.github.writes.comments("octo", "hello", 7)) == 1  # not twice
    [retry] = steps(store, outcome.task, Step.WRITE_RETRY)
    assert retry.startswith("comment: ") and "attempt 2 of 3" in retry
    assert (outcome.counts["retried"], outcome.counts["written"]) == (1, 1)


def test_a_forge_that_keeps_failing_dead_letters_the_write(
    store: Store, user_home: Path, forge: ForgeEmulator
) -> None:
    forge.fail(r"/issues/7/comments$", 502, method="POST", times=None)
    outcome = review(store, user_home, forge, {"comment": {"allow": True}}, answer=REMARK)
    record = outcome.writes["comment"]
    tries = FAST_WRITES.attempts
    assert (record.state, record.attempts) == (WriteState.DEAD, tries)
    assert record.detail.startswith(f"comment: dead-letter after {tries} attempts: ")
    assert len([r for r in forge.requests if r.method == "POST"]) == tries
    assert forge.github.writes.comments("octo", "hello", 7) == []
    assert len(steps(store, outcome.task, Step.WRITE_RETRY)) == tries - 1
    assert len(steps(store, outcome.task, Step.WRITE_FAILED)) == 1
    assert outcome.task.state.value == "completed"  # the worker did its part
    assert (outcome.counts["dead_lettered"], outcome.counts["written"]) == (1, 0)


def test_writes_are_recorded_before_the_task_is_completed(
    store: Store, user_home: Path, forge: ForgeEmulator
) -> None:
    outcome = review(store, user_home, forge, EVERYTHING, writes=3)
    order = [e.step for e in store.list_timeline(task_id=outcome.task.id)]
    decided = order.index(Step.POLICY)
    assert decided < order.index(Step.COMPLETED) < order.index(Step.WRITTEN)
    assert all(w.created_at <= outcome.task.finished_at for w in outcome.writes.values())
    assert {w.task_id for w in outcome.writes.values()} == {outcome.task.id}


def test_without_credentials_the_writes_are_a_dry_run(
    store: Store, user_home: Path, forge: ForgeEmulator
) -> None:
    outcome = review(store, user_home, forge, EVERYTHING, credentials=False, writes=3)
    assert forge.requests == []
    assert {w.state for w in outcome.writes.values()} == {WriteState.DRY_RUN}
    comments = ISSUE.removeprefix("/github") + "/comments"
    assert outcome.writes["comment"].detail.startswith(f"would POST {comments} (")
    dry = steps(store, outcome.task, Step.DRY_RUN)
    assert len(dry) == 3
    assert all("(no GitHub credentials in secrets.yml): would " in d for d in dry)
    assert outcome.task.state.value == "completed"
    assert outcome.counts["dry_run"] == 3


def test_a_dry_run_policy_writes_nothing_even_with_credentials(
    store: Store, user_home: Path, forge: ForgeEmulator
) -> None:
    outcome = review(store, user_home, forge, {**EVERYTHING, "dry_run": True}, writes=3)
    assert written(forge) == []
    assert {w.state for w in outcome.writes.values()} == {WriteState.DRY_RUN}
    assert all(
        "(the policy says dry_run): would " in d for d in steps(store, outcome.task, Step.DRY_RUN)
    )


def test_a_task_cancelled_while_its_writes_are_planned_writes_nothing(
    store: Store, user_home: Path, forge: ForgeEmulator
) -> None:
    register(store, definition("reviewer", policy={"comment": {"allow": True}}))
    worker = Worker(REMARK, gated=True)
    started, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        started.set()
        release.wait(DEADLINE)

    async def main() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            github = GitHubWriter(http, api_url=forge.github_url, auth=GitHubAuth.token(TOKEN))
            async with Rig(store, user_home, send=worker.send, writers={"github": github}) as rig:
                event = await rig.pipeline.receive(delivery())
                assert event is not None
                await eventually(lambda: worker.flying() == 1, "the send started")
                [task] = store.list_tasks(event_id=event.id)
                await eventually(
                    lambda: store.get_worker("reviewer").state is WorkerState.BUSY, "busy"
                )
                rig.writer.submit(hold_the_writer)  # the store's writer thread is busy
                await eventually(started.is_set, "the writer is held")
                worker.gate.set()  # the worker answers; its writes wait to be recorded
                await eventually(lambda: worker.flying() == 0, "the worker answered")
                await turns()
                cancel = TaskUpdate(
                    task_id=task.id, state=TaskState.CANCELLED, step=Step.CANCELLED,
                    only_from=frozenset({TaskState.RUNNING}), detail="by hand",
                )  # fmt: skip
                polls = rig.dispatcher.polls
                assert store.update_tasks([cancel]) != [None]  # `mecha task cancel`
                # a whole check for cancelled sends runs while the writes wait to be recorded
                await eventually(lambda: rig.dispatcher.polls >= polls + 2, "a poll saw it")
                release.set()
                await eventually(
                    lambda: (
                        rig.plans.items >= 1
                        and not any(w.state in _OPEN for w in store.list_writes(task_id=task.id))
                    ),
                    "the plan recorded and no write open",
                )
                await eventually(lambda: rig.dispatcher.in_flight() == 0, "the send ended")

    try:
        asyncio.run(main())
    finally:
        release.set()
    [task] = store.list_tasks()
    assert task.state is TaskState.CANCELLED
    assert forge.github.writes.comments("octo", "hello", 7) == []  # nothing for a cancelled task
