"""Incremental review through the engine: a worker's tasks on one pull request, on a real
SQLite file, with the diff fetched from the forge emulator over HTTP. Its first task gets
the full diff (nothing reviewed yet); once that task completed, a push makes a second task
that gets only the new commits and the head it reviewed; after a force-push, the full diff
again, saying why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from mecha.forges.github.hydrate import GitHubAuth, GitHubClient
from mecha.forges.hydrator import ForgeHydrator
from mecha.forges.incremental import NO_REVIEW
from mecha.store import Store
from mecha.store.sqlite.store import open_sqlite
from mecha.task import Task, TaskState
from mecha.testing.forge.api import FileChange, ForgeEmulator
from tests.unit.engine.fakes import BASE, Worker, definition, delivery, eventually, register
from tests.unit.engine.rig import FAST, Rig

TOKEN = "ghp_" + "E" * 36
H1, H2, H3 = "a1" * 20, "b2" * 20, "c3" * 20
A = FileChange("a.py", "@@ -1 +1 @@\n-a\n+A\n", additions=1, deletions=1)
B = FileChange("b.py", "@@ -0,0 +1 @@\n+b\n", status="added", additions=1)
C = FileChange("c.py", "@@ -0,0 +1 @@\n+c\n", status="added", additions=1)
PROMPT = "since={{.last_reviewed_sha}} fallback={{.diff_since_last_fallback}}\n{{.diff_since_last}}"
ON = ["pull_request.opened", "pull_request.synchronize"]


@asynccontextmanager
async def engine(
    store: Store, home: Path, forge: ForgeEmulator, worker: Worker
) -> AsyncIterator[Rig]:
    """The engine over ``store``, its hydrator asking the emulator with a token."""
    async with (
        httpx.AsyncClient() as http,
        Rig(store, home, send=worker.send, settings=FAST) as rig,
    ):
        github = GitHubClient(http, api_url=forge.github_url, auth=GitHubAuth.token(TOKEN))
        rig.pipeline.hydrator = ForgeHydrator(github=github, gitlab=None)
        yield rig


async def reviewed(rig: Rig, store: Store, delivery_id: str, kind: str, head: str) -> Task:
    """Deliver the event for ``head``; the worker's task once it completed."""
    event = await rig.pipeline.receive(delivery(delivery_id, type=kind, head_sha=head,
                                                base_sha=BASE))  # fmt: skip
    assert event is not None

    def done() -> Task | None:
        tasks = store.list_tasks(event_id=event.id)
        return tasks[0] if tasks and tasks[0].state is TaskState.COMPLETED else None

    return await eventually(done, f"the task for {head[:4]} completed")


def test_a_workers_second_task_on_a_pull_request_gets_only_the_new_diff(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = open_sqlite(tmp_path / "mecha.db")
    register(store, definition("reviewer", prompt=PROMPT, on=ON))
    worker = Worker()

    async def main(forge: ForgeEmulator) -> list[Task]:
        async with engine(store, home, forge, worker) as rig:
            first = await reviewed(rig, store, "d-1", "pull_request.opened", H1)
            forge.push_pull("octo", "hello", 7, head_sha=H2, files=[B])
            second = await reviewed(rig, store, "d-2", "pull_request.synchronize", H2)
            forge.push_pull("octo", "hello", 7, head_sha=H3, files=[C], force=True)
            third = await reviewed(rig, store, "d-3", "pull_request.synchronize", H3)
            return [first, second, third]

    try:
        with ForgeEmulator(github_token=TOKEN) as forge:
            forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=H1, files=[A])
            first, second, third = asyncio.run(main(forge))
            compares = [p for p in forge.paths() if "/compare/" in p]
        # the first: nothing reviewed yet, so the full diff, and why
        assert first.prompt.startswith(f"since= fallback={NO_REVIEW}\ndiff --git a/a.py b/a.py\n")
        # the second: the changes since H1, the head the first completed on, and only those
        assert second.prompt.startswith(f"since={H1} fallback=\ndiff --git a/b.py b/b.py\n")
        assert "a.py" not in second.prompt
        # the third, after a force-push: the full diff of the rewritten branch, and why
        assert third.prompt.startswith(
            f"since= fallback=force-push: the last reviewed commit {H2[:12]} is no longer an "
            f"ancestor of the head {H3[:12]} (GitHub compare: diverged)\ndiff --git a/c.py"
        )
        assert [t.prompt for t in worker.sent] == [first.prompt, second.prompt, third.prompt]
        # pinned to SHAs: the full diff base...head, and last...head for the comparisons
        base = "/github/repos/octo/hello/compare/"
        assert compares == [
            f"{base}{BASE}...{H1}",
            f"{base}{BASE}...{H2}", f"{base}{H1}...{H2}?per_page=1", f"{base}{H1}...{H2}",
            f"{base}{BASE}...{H3}", f"{base}{H2}...{H3}?per_page=1",
        ]  # fmt: skip
        decision = store.list_matches(second.event_id)[0]
        assert (
            decision.reason
            == f"rule 1 matched; diff since last review: the changes since {H1[:12]}"
        )
        assert store.last_reviewed_head("reviewer", source="github", repo="octo/hello",
                                        number=7) == H3  # fmt: skip
    finally:
        store.close()
