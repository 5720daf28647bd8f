"""``policy.comment.max_per_hour`` (default 10) through the engine: results of a worker on
one pull request, their comments planned in the ledger and written by GitHubWriter to the
forge emulator; the 11th in an hour is skipped with its reason on the event's timeline and
counted, another pull request is not held back, and an hour later (a fake clock) the
window has rolled over."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any

import httpx

from mecha.forges.github.auth import GitHubAuth
from mecha.forges.github.write import GitHubWriter
from mecha.policy.writes import WriteState
from mecha.result import Comment, TaskResult
from mecha.store import Store
from mecha.testing.forge.api import ForgeEmulator
from mecha.timeline import Step
from tests.unit.engine.fakes import BASE, HEAD, Worker, definition, delivery, eventually, register
from tests.unit.engine.rig import Rig

TOKEN = "ghp_" + "K" * 36
ISSUE = "/github/repos/octo/hello/issues"
SKIPPED = (
    "skipped: comment: not written: reviewer wrote 10 comments on octo/hello#7 in the last "
    "hour (policy.comment.max_per_hour 10; sticky edits count)"
)


def later(seconds: float) -> float:
    """A clock ``seconds`` ahead of the real one."""
    return time.time() + seconds


def deliver_all(store: Store, home: Path, forge: ForgeEmulator, policy: dict[str, Any],
                plan: list[tuple[int, float]]) -> dict[str, int]:  # fmt: skip
    """Register a reviewer with ``policy``; deliver one pull request event per (number,
    hours later) in ``plan``, in turn, each settled before the next; the write-back counts."""
    register(store, definition("reviewer", policy=policy))
    sender = Worker(TaskResult(output="", comment=Comment(body="Looks fine to me.")))

    async def main() -> dict[str, int]:
        async with httpx.AsyncClient(trust_env=False) as http:
            github = GitHubWriter(http, api_url=forge.github_url, auth=GitHubAuth.token(TOKEN))
            async with Rig(store, home, send=sender.send, writers={"github": github}) as rig:
                for n, (number, hours) in enumerate(plan):
                    rig.writeback.cap.clock = functools.partial(later, hours * 3600)
                    event = await rig.pipeline.receive(delivery(f"d-{n}", number=number))
                    assert event is not None

                    def settled(event_id: str = event.id) -> bool:
                        [task] = store.list_tasks(event_id=event_id)
                        open_ = (WriteState.PLANNED, WriteState.CALLING)
                        writes = store.list_writes(event_id=event_id)
                        return task.final and all(w.state not in open_ for w in writes)

                    await eventually(settled, f"delivery {n} settled")
                return dict(rig.writeback.stats())

    return asyncio.run(main())


def comment_writes(store: Store, number: int) -> list[WriteState]:
    return [w.state for w in store.list_writes()
            if w.write.action == "comment" and w.write.place.number == number]  # fmt: skip


def test_the_eleventh_comment_in_an_hour_on_one_thread_is_skipped_with_its_reason(
    store: Store, tmp_path: Path
) -> None:
    with ForgeEmulator(github_token=TOKEN) as forge:
        for number in (7, 8):
            forge.add_pull("octo", "hello", number, base_sha=BASE, head_sha=HEAD)
        plan = [(7, 0.0)] * 11 + [(8, 0.0), (7, 1.01)]
        stats = deliver_all(store, tmp_path, forge, {"comment": {"allow": True}}, plan)
        written = [r for r in forge.requests if r.method in ("POST", "PATCH")]
    # ten on #7 (one comment, then nine sticky edits), one on #8, and #7 again an hour on
    assert comment_writes(store, 7) == [WriteState.DONE] * 11
    assert comment_writes(store, 8) == [WriteState.DONE]
    assert len(written) == 12
    assert stats["writes_capped"] == 1
    events = sorted(store.list_events(limit=20), key=lambda e: int(e.delivery_id[2:]))
    capped = events[10]
    assert store.list_writes(event_id=capped.id) == []
    policy = [e.detail for e in store.list_timeline(event_id=capped.id) if e.step == Step.POLICY]
    assert policy == ["allowed: comment", SKIPPED]
    for other in events[:10] + events[11:]:
        details = [e.detail for e in store.list_timeline(event_id=other.id)]
        assert not any("max_per_hour" in detail for detail in details)


def test_max_per_hour_is_the_policys_own_and_counts_new_comments(
    store: Store, tmp_path: Path
) -> None:
    with ForgeEmulator(github_token=TOKEN) as forge:
        forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD)
        policy = {"comment": {"allow": True, "max_per_hour": 2, "sticky": False}}
        stats = deliver_all(store, tmp_path, forge, policy, [(7, 0.0)] * 3)
        posted = [r.path for r in forge.requests if r.method == "POST"]
    assert comment_writes(store, 7) == [WriteState.DONE] * 2
    assert posted == [f"{ISSUE}/7/comments"] * 2  # two new comments, no third
    assert stats["writes_capped"] == 1


def test_results_settled_at_once_never_pass_the_cap(store: Store, tmp_path: Path) -> None:
    register(store, definition("reviewer", policy={"comment": {"allow": True}}, concurrency=16))
    sender = Worker(TaskResult(output="", comment=Comment(body="Looks fine.")), gated=True)
    with ForgeEmulator(github_token=TOKEN) as forge:
        forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD)

        async def main() -> dict[str, int]:
            async with httpx.AsyncClient(trust_env=False) as http:
                auth = GitHubAuth.token(TOKEN)
                github = GitHubWriter(http, api_url=forge.github_url, auth=auth)
                async with Rig(
                    store, tmp_path, send=sender.send, writers={"github": github}
                ) as rig:
                    for n in range(14):
                        await rig.pipeline.receive(delivery(f"d-{n}"))
                    await eventually(lambda: sender.flying() == 14, "14 sends in flight")
                    sender.gate.set()  # every answer at once: the settles race for the cap
                    await eventually(lambda: all(t.final for t in store.list_tasks())
                                     and len(store.list_tasks()) == 14, "all settled")  # fmt: skip
                    await rig.writeback.drain()
                    return dict(rig.writeback.stats())

        stats = asyncio.run(main())
    assert len(comment_writes(store, 7)) == 10
    assert stats["writes_capped"] == 4
