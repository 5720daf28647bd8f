"""Flow control through the pipeline and the dispatcher (a fake send, no HTTP): a key's
tasks run one at a time in their events' order while other keys go on; ``supersede`` drops
a running task's answer (nothing is written) and runs the newest event next; ``debounce``
runs only the last event once the key has been quiet."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from mecha.engine.targets import Target
from mecha.event import Delivery
from mecha.result import Comment, TaskResult
from mecha.store import Store
from mecha.task import Task, TaskState
from mecha.timeline import Step
from tests.unit.engine.fakes import definition, eventually, register
from tests.unit.engine.rig import Rig

PUSHES = ("pull_request.opened", "pull_request.synchronize")


def reviewer(concurrency: int = 4, **flow: Any) -> dict[str, Any]:
    written = definition("reviewer", prompt="review #{{.number}} at {{.head_sha}}", on=PUSHES,
                         concurrency=concurrency)  # fmt: skip
    written["flow"] = {"key": "{{.repo}}#{{.number}}", **flow}
    written["policy"] = {"comment": {"allow": True}}
    return written


def push(number: int, head: str) -> Delivery:
    return Delivery(
        source="github", type="pull_request.synchronize", delivery_id=f"d-{number}-{head}",
        actor="mona", subject="octo/app",
        attrs={"repo_owner": "octo", "repo_name": "app", "number": number, "head_sha": head},
    )  # fmt: skip


class KeyedWorker:
    """A send that holds each task until released, and tracks tasks in flight per key."""

    def __init__(self) -> None:
        self.sent: list[Task] = []
        self.flying: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}

    async def send(self, target: Target, task: Task) -> TaskResult:
        self.sent.append(task)
        key = task.flow_key
        self.flying[key] = self.flying.get(key, 0) + 1
        self.most[key] = max(self.most.get(key, 0), self.flying[key])
        gate = self.gates.setdefault(task.id, asyncio.Event())
        try:
            await gate.wait()
        finally:
            self.flying[key] -= 1
        return TaskResult(output=task.prompt, comment=Comment(body=f"reviewed: {task.prompt}"))

    def release(self, count: int) -> None:
        """Let the first ``count`` sends answer."""
        for task in self.sent[:count]:
            self.gates.setdefault(task.id, asyncio.Event()).set()

    def prompts(self) -> list[str]:
        return [task.prompt for task in self.sent]


def test_without_supersede_a_keys_tasks_run_one_at_a_time_in_order(
    store: Store, user_home: Path
) -> None:
    register(store, reviewer())
    worker = KeyedWorker()

    async def main() -> None:
        async with Rig(store, user_home, send=worker.send) as rig:
            for delivery in (push(7, "a1"), push(7, "a2"), push(8, "b1"), push(7, "a3")):
                await rig.pipeline.receive(delivery)
            await rig.pipeline.finish_matching()
            # PR 8 goes at once beside PR 7's first; PR 7's others wait for it
            await eventually(lambda: len(worker.sent) == 2, "two keys in flight")
            assert sorted(worker.prompts()) == ["review #7 at a1", "review #8 at b1"]
            for sent in (3, 4):
                worker.release(sent - 1)
                await eventually(lambda n=sent: len(worker.sent) == n, f"send {sent}")
            worker.release(4)
            await eventually(lambda: all(t.state is TaskState.COMPLETED
                                         for t in store.list_tasks()), "all completed")  # fmt: skip

    asyncio.run(main())
    mine = [p for p in worker.prompts() if p.startswith("review #7")]
    assert mine == ["review #7 at a1", "review #7 at a2", "review #7 at a3"]
    assert worker.most == {"octo/app#7": 1, "octo/app#8": 1}
    held = [e for t in store.list_tasks() for e in store.list_timeline(task_id=t.id)
            if e.step == Step.WAITING]  # fmt: skip
    assert held and all("flow: another task for octo/app#7" in e.detail for e in held)


def test_supersede_drops_the_running_answer_and_runs_the_newest_event_next(
    store: Store, user_home: Path
) -> None:
    register(store, reviewer(supersede=True))
    worker = KeyedWorker()

    async def main() -> Rig:
        async with Rig(store, user_home, send=worker.send) as rig:
            await rig.pipeline.receive(push(7, "h1"))
            await eventually(lambda: len(worker.sent) == 1, "the first review sent")
            for head in ("h2", "h3", "h4"):
                await rig.pipeline.receive(push(7, head))
            await rig.pipeline.finish_matching()
            worker.release(1)
            await eventually(lambda: len(worker.sent) == 2, "the newest review sent")
            worker.release(2)
            await eventually(lambda: store.list_tasks(state=TaskState.COMPLETED), "one completed")
            return rig

    rig = asyncio.run(main())
    assert worker.prompts() == ["review #7 at h1", "review #7 at h4"]
    tasks = {t.prompt: t for t in store.list_tasks()}
    first, newest = tasks["review #7 at h1"], tasks["review #7 at h4"]
    assert first.state is TaskState.SUPERSEDED and first.superseded_by == newest.id
    assert first.result == {}  # its answer was dropped, not stored
    assert store.list_writes(task_id=first.id) == []
    assert [tasks[f"review #7 at {h}"].state for h in ("h2", "h3")] == [TaskState.SUPERSEDED] * 2
    assert newest.state is TaskState.COMPLETED
    [write] = store.list_writes(task_id=newest.id)
    assert write.write.body.startswith("reviewed: review #7 at h4")
    assert rig.dispatcher.counts["superseded"] == 3
    assert [e.step for e in store.list_timeline(task_id=first.id)][-1] == Step.SUPERSEDED


def test_debounce_runs_only_the_last_event_once_the_key_is_quiet(
    store: Store, user_home: Path
) -> None:
    register(store, reviewer(debounce="300ms"))
    worker = KeyedWorker()

    async def main() -> float:
        async with Rig(store, user_home, send=worker.send) as rig:
            for head in ("h1", "h2", "h3"):
                await rig.pipeline.receive(push(7, head))
            await rig.pipeline.finish_matching()
            quiet = time.time()
            await eventually(lambda: len(worker.sent) == 1, "the last push sent")
            started = time.time()
            worker.release(1)
            await eventually(lambda: store.list_tasks(state=TaskState.COMPLETED), "completed")
        return started - quiet

    waited = asyncio.run(main())
    assert worker.prompts() == ["review #7 at h3"]
    assert waited >= 0.25  # at least the debounce after the last event (less its storing)
    states = sorted(t.state.value for t in store.list_tasks())
    assert states == ["completed", "superseded", "superseded"]


def test_a_key_naming_what_the_event_lacks_fails_that_worker_saying_why(
    store: Store, user_home: Path
) -> None:
    register(store, {**reviewer(), "events": [{"source": "github", "on": list(PUSHES),
                                                "prompt": "review {{.head_sha}}"}]})  # fmt: skip
    worker = KeyedWorker()
    attrs = {"repo_owner": "octo", "repo_name": "app", "head_sha": "h"}
    no_number = Delivery(
        source="github", type="pull_request.synchronize", delivery_id="d-x", attrs=attrs
    )

    async def main() -> str:
        async with Rig(store, user_home, send=worker.send) as rig:
            event = await rig.pipeline.receive(no_number)
            await rig.pipeline.finish_matching()
            assert event is not None
            return event.id

    event_id = asyncio.run(main())
    [decision] = store.list_matches(event_id)
    assert decision.outcome == "failed"
    assert decision.reason.startswith("flow.key uses .number, which this github "
                                      "pull_request.synchronize event lacks")  # fmt: skip
    assert worker.sent == [] and store.list_tasks() == []
