"""The pipeline over a real store, with fake sinks and a fake forge hydrator: receive →
store → match → dispatch, as named steps (no server, no worker)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from mecha.event import Event, EventState
from mecha.forges.hydration import Hydration
from mecha.store import Store, WorkerRecord
from mecha.task import TaskState
from mecha.worker.kind import WorkerKind
from tests.unit.engine.fakes import (
    EventSink,
    Hydrator,
    Journal,
    TaskSink,
    definition,
    delivery,
    eventually,
    register,
)
from tests.unit.engine.rig import pipeline_alone


class Sinks:
    """The dispatcher's and write-back's places, noting the order they were handed things."""

    def __init__(self) -> None:
        self.journal = Journal()
        self.tasks = TaskSink(self.journal)
        self.events = EventSink(self.journal)

    def events_first(self) -> bool:
        """Whether each task's event was handed to write-back before the task was handed on."""
        event_of = {t.id: t.event_id for t in self.tasks.tasks}
        seen: set[str] = set()
        for kind, ids in self.journal.entries:
            if kind == "events":
                seen.update(ids)
            elif any(event_of[i] not in seen for i in ids):
                return False
        return True


def matches(store: Store, event: Event) -> list[tuple[str, str]]:
    return [(m.worker, m.outcome) for m in store.list_matches(event.id)]


def test_deliveries_are_stored_in_one_commit_and_matched_as_stored(
    store: Store, user_home: Path
) -> None:
    """Fan-out: 4 deliveries x 2 workers, one commit; every event reaches write-back before
    any of its tasks reaches the dispatcher."""
    register(store, definition("alpha"), definition("bravo", prompt="Triage {{.title}}"))
    sinks = Sinks()

    async def main() -> list[Event | None]:
        async with pipeline_alone(
            store, user_home, tasks=sinks.tasks, events=sinks.events
        ) as pipeline:
            stored = await asyncio.gather(*(pipeline.receive(delivery(f"d{i}")) for i in range(4)))
            assert (pipeline.stored, pipeline.commits, pipeline.matched) == (4, 1, 4)
        return list(stored)

    stored = asyncio.run(main())
    events = [e for e in stored if e is not None]
    assert len(events) == 4
    assert {e.state for e in events} == {EventState.MATCHED}
    assert [store.get_event(e.id).state for e in events] == [EventState.MATCHED] * 4
    tasks = [t for e in events for t in store.list_tasks(event_id=e.id)]
    assert sorted((t.worker, t.prompt) for t in tasks) == sorted(
        [("alpha", "Review Fix the parser"), ("bravo", "Triage Fix the parser")] * 4
    )
    assert {t.state for t in tasks} == {TaskState.PENDING}
    # what was stored is what was handed on, once each
    assert sorted(sinks.journal.ids("tasks")) == sorted(t.id for t in tasks)
    assert sorted(sinks.journal.ids("events")) == sorted(e.id for e in events)
    assert sinks.events_first()
    assert matches(store, events[0]) == [("alpha", "matched"), ("bravo", "matched")]


def test_a_duplicate_delivery_is_none_and_makes_nothing(store: Store, user_home: Path) -> None:
    register(store, definition("w"))
    sinks = Sinks()

    async def main() -> tuple[Event | None, ...]:
        async with pipeline_alone(store, user_home, tasks=sinks.tasks, events=sinks.events) as p:
            first = await p.receive(delivery("same"))
            again = await p.receive(delivery("same"))
            twice = await asyncio.gather(p.receive(delivery("pair")), p.receive(delivery("pair")))
        return (first, again, *twice)

    first, again, one, other = asyncio.run(main())
    assert first is not None and again is None
    assert [one is None, other is None].count(True) == 1  # duplicates in one batch as well
    assert len(store.list_events()) == 2
    assert len(store.list_tasks()) == 2
    assert len(sinks.tasks.tasks) == 2 and len(sinks.events.events) == 2


def test_an_event_needing_its_diff_waits_then_is_matched_with_it(
    store: Store, user_home: Path
) -> None:
    register(store, definition("differ", prompt="Review this:\n{{.diff}}"))
    sinks = Sinks()
    hydrator = Hydrator({"diff": "--- a/app.py\n+++ b/app.py\n", "file_list": "app.py"})

    async def main() -> None:
        async with pipeline_alone(
            store, user_home, tasks=sinks.tasks, events=sinks.events, hydrator=hydrator
        ) as pipeline:
            event = await pipeline.receive(delivery())
            assert event is not None and event.state is EventState.RECEIVED
            await eventually(lambda: hydrator.asked == [event.id], "the forge was asked")
            assert store.get_event(event.id).state is EventState.RECEIVED
            assert (store.list_tasks(), sinks.journal.entries) == ([], [])  # nothing yet
            hydrator.gate.set()
            await eventually(lambda: sinks.tasks.tasks, "its task was handed on")

    asyncio.run(main())
    [event] = store.list_events()
    assert event.state is EventState.MATCHED
    assert event.attrs["file_list"] == "app.py"  # the fetched attributes are stored
    [task] = store.list_tasks()
    assert task.prompt == "Review this:\n--- a/app.py\n+++ b/app.py\n"
    assert task.context["diff"] == "--- a/app.py\n+++ b/app.py\n"
    assert [kind for kind, _ in sinks.journal.entries] == ["events", "tasks"]
    assert sinks.events_first()
    assert sinks.events.events[0].attrs["diff"] == "--- a/app.py\n+++ b/app.py\n"
    assert hydrator.asked == [event.id]  # once


def test_a_failed_fetch_is_recorded_and_the_event_matched_without_a_diff(
    store: Store, user_home: Path
) -> None:
    register(store, definition("w", prompt="{{if .diff}}{{.diff}}{{else}}no diff{{end}}"))
    hydrator = Hydrator({"diff_error": "GitHub said 403"}, error="diff: GitHub said 403")
    hydrator.gate.set()
    sinks = Sinks()

    async def main() -> None:
        async with pipeline_alone(
            store, user_home, tasks=sinks.tasks, events=sinks.events, hydrator=hydrator
        ) as pipeline:
            await pipeline.receive(delivery())

    asyncio.run(main())
    [event] = store.list_events()
    assert (event.state, event.error) == (EventState.MATCHED, "diff: GitHub said 403")
    assert [t.prompt for t in store.list_tasks()] == ["no diff"]


def test_an_event_no_worker_takes_is_skipped_without_asking_the_forge(
    store: Store, user_home: Path
) -> None:
    register(store, definition("pushes", on=["push"]))
    hydrator = Hydrator()
    sinks = Sinks()

    async def main() -> Event | None:
        async with pipeline_alone(
            store, user_home, tasks=sinks.tasks, events=sinks.events, hydrator=hydrator
        ) as pipeline:
            return await pipeline.receive(delivery())

    event = asyncio.run(main())
    assert event is not None and event.state is EventState.SKIPPED
    assert store.get_event(event.id).state is EventState.SKIPPED
    assert (hydrator.asked, store.list_tasks(), sinks.journal.entries) == ([], [], [])
    assert matches(store, event) == [("pushes", "not_matched")]


def test_a_worker_whose_prompt_lacks_a_key_fails_alone(store: Store, user_home: Path) -> None:
    register(store, definition("needs", prompt="{{.milestone}}"), definition("fine"))
    sinks = Sinks()

    async def main() -> Event | None:
        async with pipeline_alone(store, user_home, tasks=sinks.tasks, events=sinks.events) as p:
            return await p.receive(delivery())

    event = asyncio.run(main())
    assert event is not None and event.state is EventState.MATCHED
    assert [t.worker for t in store.list_tasks()] == ["fine"]
    assert [t.worker for t in sinks.tasks.tasks] == ["fine"]
    [fine, needs] = store.list_matches(event.id)
    assert (fine.outcome, needs.worker, needs.outcome) == ("matched", "needs", "failed")
    assert needs.reason == "prompt of rule 1 uses .milestone, which this event lacks"


def test_a_broken_worker_is_recorded_unusable(store: Store, user_home: Path) -> None:
    written = definition("gone", endpoint="${GONE_URL}")
    record = WorkerRecord(
        name="gone", kind=WorkerKind.UNMANAGED, definition={"worker": written, "withheld": []}
    )
    store.add_workers([record])  # registered when GONE_URL was set; it is not any more
    register(store, definition("fine"))
    sinks = Sinks()

    async def main() -> Event | None:
        async with pipeline_alone(store, user_home, tasks=sinks.tasks, events=sinks.events) as p:
            return await p.receive(delivery())

    event = asyncio.run(main())
    assert event is not None and event.state is EventState.MATCHED
    [fine, gone] = store.list_matches(event.id)
    assert (fine.worker, fine.outcome) == ("fine", "matched")
    assert (gone.worker, gone.outcome) == ("gone", "unusable")
    assert "GONE_URL" in gone.reason
    assert [t.worker for t in store.list_tasks()] == ["fine"]


class Buggy(Hydrator):
    """A forge client with a bug: it raises on events titled "boom"."""

    def handles(self, event: Event) -> bool:
        if event.attrs.get("title") == "boom":
            raise RuntimeError("a bug in matching")
        return False

    async def hydrate(self, event: Event) -> Hydration | None:
        raise RuntimeError("the same bug, later")


def test_a_bug_in_matching_keeps_the_event_received_and_spares_the_batch(
    store: Store, user_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    register(store, definition("w"))
    sinks = Sinks()

    async def main() -> list[Event | None]:
        async with pipeline_alone(
            store, user_home, tasks=sinks.tasks, events=sinks.events, hydrator=Buggy()
        ) as p:
            return list(
                await asyncio.gather(
                    p.receive(delivery("ok")), p.receive(delivery("b", title="boom"))
                )
            )

    with caplog.at_level(logging.ERROR, logger="mecha.engine.pipeline"):
        fine, boom = asyncio.run(main())
    assert fine is not None and boom is not None
    assert store.get_event(fine.id).state is EventState.MATCHED
    assert store.get_event(boom.id).state is EventState.RECEIVED  # kept, matched at next start
    assert [t.event_id for t in store.list_tasks()] == [fine.id]
    logged = [r.getMessage() for r in caplog.records]
    assert f"matching event {boom.id} failed; it is matched again later" in logged
    assert f"matching event {boom.id} failed; it is retried at the next start" in logged
