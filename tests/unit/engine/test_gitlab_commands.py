"""GitLab comment commands through the engine, against the forge emulator's GitLab: the note
author's access level is asked of the members API before trust decides (a Developer runs by
default; a Reporter, a stranger and a failed lookup are refused with the reason on the
timeline), and a command that runs gets its 👀 award emoji and its answer in the worker's
sticky note."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mecha.event import Delivery
from mecha.forges.gitlab.hydrate import GitLabClient
from mecha.forges.gitlab.write import GitLabWriter
from mecha.forges.hydrator import ForgeHydrator
from mecha.policy.writes import WriteState
from mecha.result import Comment, TaskResult
from mecha.store import Store
from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.forge.gitlab.members import user_id
from mecha.timeline import Step
from tests.unit.engine.comments import MR, PROJECT, PROJECT_ID, note
from tests.unit.engine.fakes import BASE, HEAD, Worker, eventually, register
from tests.unit.engine.rig import Rig

TOKEN = "glpat-" + "G" * 20
REFUSED = "trust: the note's author is {} on this GitLab project; trust.min member allows "


def reviewer(name: str = "reviewer", **trust: Any) -> dict[str, Any]:
    written: dict[str, Any] = {
        "name": name, "endpoint": "http://127.0.0.1:9/", "rate_limit": {"per_second": 0},
        "events": [{"source": "gitlab", "command": "/review", "prompt": "review {{.comment}}"}],
        "policy": {"comment": {"allow": True}, "reactions": {"allow": True}},
    }  # fmt: skip
    if trust:
        written["trust"] = trust
    return written


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    """GitLab wanting TOKEN, with merge request !1 of the note sample's project, a Developer
    (dev), a Reporter (rep) and a Maintainer (boss) in it."""
    with ForgeEmulator(gitlab_token=TOKEN) as emulator:
        emulator.add_merge_request(PROJECT, MR, base_sha=BASE, head_sha=HEAD,
                                   project_id=PROJECT_ID)  # fmt: skip
        for name, level in (("dev", 30), ("rep", 20), ("boss", 40)):
            emulator.gitlab.people.add_member(PROJECT_ID, name, level)
        yield emulator


def command(
    forge: ForgeEmulator, author: str, text: str = "/review please"
) -> tuple[int, Delivery]:
    """A note by ``author`` seeded on !1, and its webhook delivery."""
    number = forge.gitlab.add_note(PROJECT_ID, MR, text, author=author)
    return number, note(number, text, author=author, author_id=user_id(author))


def run(store: Store, home: Path, forge: ForgeEmulator, deliveries: list[Delivery], *,
        token: bool = True) -> Worker:  # fmt: skip
    """Deliver each; return once every event is matched and every task and write settled."""
    sender = Worker(TaskResult(output="", comment=Comment(body="Reviewed.")))

    async def main() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            writer = GitLabWriter(http, base_url=forge.gitlab_url, token=TOKEN)
            client = GitLabClient(http, base_url=forge.gitlab_url, token=TOKEN)
            async with Rig(store, home, send=sender.send, writers={"gitlab": writer}) as rig:
                rig.pipeline.hydrator = ForgeHydrator(github=None, gitlab=client if token else None)
                for delivered in deliveries:
                    await rig.pipeline.receive(delivered)
                await rig.pipeline.finish_matching()

                def settled() -> bool:
                    open_ = (WriteState.PLANNED, WriteState.CALLING)
                    return all(t.final for t in store.list_tasks()) and all(
                        w.state not in open_ for w in store.list_writes()
                    )

                await eventually(settled, "tasks and writes settled")
                await rig.writeback.drain()

    asyncio.run(main())
    return sender


def decided(store: Store, author: str) -> str:
    """What the timeline says matching decided about ``author``'s note."""
    [event] = [e for e in store.list_events(limit=50) if e.attrs.get("comment_author") == author]
    [step] = [e for e in store.list_timeline(event_id=event.id)
              if e.step in (Step.MATCHED, Step.SKIPPED)]  # fmt: skip
    return step.detail


def test_a_developers_command_runs_by_default_reacted_to_and_answered_in_the_sticky_note(
    store: Store, tmp_path: Path, forge: ForgeEmulator
) -> None:
    register(store, reviewer())
    first, delivered = command(forge, "dev")
    again, later = command(forge, "boss", "/review again")
    sent = run(store, tmp_path, forge, [delivered, later])
    assert sorted(t.prompt for t in sent.sent) == ["review /review again", "review /review please"]
    assert decided(store, "dev") == decided(store, "boss") == "taken by reviewer"
    levels = {e.attrs["comment_author"]: e.attrs["author_access_level"]
              for e in store.list_events(limit=10)}  # fmt: skip
    assert levels == {"dev": 30, "boss": 40}
    people = forge.gitlab.people
    assert people.awarded(PROJECT_ID, first) == [("mecha-bot", "eyes")]
    assert people.awarded(PROJECT_ID, again) == [("mecha-bot", "eyes")]
    ours = [n for n in forge.gitlab.notes(PROJECT_ID, MR) if n.author == "mecha-bot"]
    assert len(ours) == 1 and ours[0].body.startswith("Reviewed.")  # one sticky note
    # each author asked once; the two notes are matched concurrently, so in either order
    asked = sorted(p for p in forge.paths("GET") if "/members/all/" in p)
    assert asked == sorted(f"/gitlab/api/v4/projects/{PROJECT_ID}/members/all/{user_id(name)}"
                           for name in ("dev", "boss"))  # fmt: skip


def test_a_reporter_and_a_stranger_are_refused_with_the_reason_on_the_timeline(
    store: Store, tmp_path: Path, forge: ForgeEmulator
) -> None:
    register(store, reviewer(), reviewer("triage", min="contributor"))
    (rep, by_rep), (_, by_stranger) = command(forge, "rep"), command(forge, "stranger")
    sent = run(store, tmp_path, forge, [by_rep, by_stranger])
    assert [t.worker for t in sent.sent] == ["triage"]  # a Reporter is a contributor
    assert REFUSED.format("Reporter (20)") + "Developer (30) and up" in decided(store, "rep")
    stranger = decided(store, "stranger")
    assert "refused by reviewer: rule 1: " + REFUSED.format("no member (0)") in stranger
    assert "; triage: rule 1: trust: the note's author is no member (0)" in stranger
    assert "Guest (10) and up" in stranger
    assert list(forge.gitlab.people.awards) == [(PROJECT_ID, rep)]  # triage's 👀 alone


def test_a_failed_lookup_refuses_the_command(
    store: Store, tmp_path: Path, forge: ForgeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    register(store, reviewer())
    forge.fail(r"/members/all/", 502, times=None)
    caplog.set_level(logging.WARNING)
    sent = run(store, tmp_path, forge, [command(forge, "dev")[1]])
    assert sent.sent == []
    detail = decided(store, "dev")
    assert "trust: the note author's access level could not be looked up on GitLab" in detail
    assert "502" in detail and "so the command is refused" in detail
    assert len([p for p in forge.paths("GET") if "/members/all/" in p]) == 2  # asked twice
    assert not [r for r in caplog.records if r.exc_info]  # said, never a traceback


def test_without_a_gitlab_token_a_command_is_refused_and_min_anyone_is_never_asked(
    store: Store, tmp_path: Path, forge: ForgeEmulator
) -> None:
    register(store, reviewer(), reviewer("open", min="anyone"))
    sent = run(store, tmp_path, forge, [command(forge, "dev")[1]], token=False)
    assert [t.worker for t in sent.sent] == ["open"]
    assert "GitLab access level is unknown" in decided(store, "dev")
    assert not [p for p in forge.paths() if "/members/" in p]
