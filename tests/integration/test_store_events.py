"""Events, match decisions and tasks in a real SQLite file."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mecha.errors import EventNotFound
from mecha.event import Delivery, Event, EventState
from mecha.store import EventOutcome
from mecha.store.sqlite.store import SqliteStore, open_sqlite
from mecha.task import NewTask, TaskState
from mecha.worker.matching import Decision, Outcome


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = open_sqlite(tmp_path / "mecha.db")
    yield opened
    opened.close()


def delivery(
    delivery_id: str = "d-1", *, raw: bytes = b'{"a": 1}', source: str = "github"
) -> Delivery:
    return Delivery(
        source=source, type="pull_request.opened", delivery_id=delivery_id, actor="mona",
        subject="octo/app", attrs={"number": 7, "draft": False, "title": "T"}, raw=raw,
        headers={"x-github-event": "pull_request"},
    )  # fmt: skip


def test_a_stored_event_reads_back_whole(store: SqliteStore) -> None:
    [event] = store.insert_events([delivery()])
    assert event is not None
    again = store.get_event(event.id)
    assert (again.type, again.state, again.raw) == (
        "pull_request.opened",
        EventState.RECEIVED,
        b'{"a": 1}',
    )
    assert again.attrs == {"number": 7, "draft": False, "title": "T"}
    assert again.headers == {"x-github-event": "pull_request"}


def test_a_repeated_delivery_id_is_none_and_stores_nothing(store: SqliteStore) -> None:
    first, second, third = store.insert_events([delivery("x"), delivery("x"), delivery("y")])
    assert first is not None and second is None and third is not None
    assert store.insert_events([delivery("x")]) == [None]
    assert len(store.list_events()) == 2


def test_the_same_delivery_id_from_another_source_is_another_event(store: SqliteStore) -> None:
    results = store.insert_events([delivery("x"), delivery("x", source="gitlab")])
    assert None not in results


def test_large_bodies_are_compressed_on_disk_and_read_back_exactly(
    store: SqliteStore, tmp_path: Path
) -> None:
    raw = b'{"body": "' + b"review me " * 3000 + b'"}'
    [event] = store.insert_events([delivery(raw=raw)])
    assert event is not None
    with sqlite3.connect(tmp_path / "mecha.db") as conn:
        blob, encoding = conn.execute("SELECT raw, raw_encoding FROM events").fetchone()
    assert encoding == "zlib"
    assert len(blob) < len(raw) / 5
    assert zlib.decompress(blob) == raw
    assert store.get_event(event.id).raw == raw


def test_an_event_is_found_by_a_unique_prefix(store: SqliteStore) -> None:
    [event] = store.insert_events([delivery()])
    assert event is not None
    assert store.get_event(event.id[:8]).id == event.id


@pytest.mark.parametrize("wanted", ["nope", "", "abc"])
def test_an_unknown_id_says_how_to_list_events(store: SqliteStore, wanted: str) -> None:
    with pytest.raises(EventNotFound) as caught:
        store.get_event(wanted)
    assert "mecha event ls" in caught.value.hint


def test_outcomes_record_decisions_tasks_and_state(store: SqliteStore) -> None:
    [event] = store.insert_events([delivery()])
    assert event is not None
    outcome = EventOutcome(
        event_id=event.id, state=EventState.MATCHED,
        decisions=[Decision(worker="a", outcome=Outcome.MATCHED, rule=0, reason="rule 1 matched"),
                   Decision(worker="b", outcome=Outcome.NOT_MATCHED, reason="rule 1: no")],
        tasks=[NewTask(worker="a", event_id=event.id, prompt="do it", context={"n": 1})],
        attrs={**event.attrs, "diff": "+x"},
    )  # fmt: skip
    [[task]] = store.record_outcomes([outcome])
    assert (task.worker, task.state, task.dedup_key) == ("a", TaskState.PENDING, f"{event.id}:a")
    stored = store.get_event(event.id)
    assert stored.state is EventState.MATCHED
    assert stored.attrs["diff"] == "+x"
    matches = store.list_matches(event.id)
    assert [(m.worker, m.outcome, m.task_id) for m in matches] == [
        ("a", "matched", task.id),
        ("b", "not_matched", ""),
    ]
    assert store.list_tasks(event_id=event.id) == [task]


def test_matching_an_event_twice_makes_no_second_task(store: SqliteStore) -> None:
    [event] = store.insert_events([delivery()])
    assert event is not None
    outcome = EventOutcome(
        event_id=event.id, state=EventState.MATCHED,
        decisions=[Decision(worker="a", outcome=Outcome.MATCHED, rule=0)],
        tasks=[NewTask(worker="a", event_id=event.id, prompt="p")],
    )  # fmt: skip
    [[first]] = store.record_outcomes([outcome])
    [[second]] = store.record_outcomes([outcome])
    assert first.id == second.id
    assert len(store.list_tasks()) == 1


def test_the_registry_version_moves_on_definition_changes_only(store: SqliteStore) -> None:
    from mecha.store import WorkerRecord
    from mecha.worker.kind import WorkerKind, WorkerState

    start = store.registry_version()
    record = WorkerRecord(name="w", kind=WorkerKind.UNMANAGED, definition={"worker": {}})
    store.add_workers([record])
    added = store.registry_version()
    store.set_worker_state("w", WorkerState.ONLINE)
    assert store.registry_version() == added > start
    store.add_workers([record], replace=True)
    assert store.registry_version() > added
    store.remove_worker("w", allowed_states=[WorkerState.ONLINE])
    assert store.registry_version() > added + 1


def test_listing_filters_by_state_and_orders(store: SqliteStore) -> None:
    events = store.insert_events([delivery(f"d{n}") for n in range(3)])
    assert all(e is not None for e in events)
    newest = store.list_events(limit=1)
    assert len(newest) == 1
    assert [
        e.delivery_id for e in store.list_events(state=EventState.RECEIVED, oldest_first=True)
    ] == ["d0", "d1", "d2"]
    assert store.list_events(state=EventState.SKIPPED) == []


def test_decided_events_are_stored_with_their_tasks_in_one_transaction(
    store: SqliteStore,
) -> None:
    def decide(event: Event) -> EventOutcome:
        return EventOutcome(
            event_id=event.id, state=EventState.MATCHED,
            decisions=[Decision(worker="a", outcome=Outcome.MATCHED, rule=0)],
            tasks=[NewTask(worker="a", event_id=event.id, prompt=f"#{event.attrs['number']}")],
        )  # fmt: skip

    first, again = store.insert_events([delivery("z"), delivery("z")], decide=decide)
    assert first is not None and again is None
    assert first.state is EventState.MATCHED
    assert store.get_event(first.id).state is EventState.MATCHED
    assert [t.prompt for t in store.list_tasks()] == ["#7"]  # the duplicate made no task
    assert [m.worker for m in store.list_matches(first.id)] == ["a"]


def test_an_undecided_event_stays_received(store: SqliteStore) -> None:
    [event] = store.insert_events([delivery()], decide=lambda event: None)
    assert event is not None
    assert store.get_event(event.id).state is EventState.RECEIVED
    assert store.list_tasks() == []
