"""Events, match decisions and tasks, on every store."""

from __future__ import annotations

import sqlite3
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from mecha.errors import EventNotFound
from mecha.event import Event, EventState, received
from mecha.store import Arrival, EventOutcome
from mecha.store.sqlite.store import SqliteStore
from mecha.task import NewTask, TaskState
from mecha.worker.matching import Decision, Outcome
from tests.integration.store.stores import AnyStore, arrive, delivery, sqlite_only


def test_a_stored_event_reads_back_whole(store: AnyStore) -> None:
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


def test_a_repeated_delivery_id_is_none_and_stores_nothing(store: AnyStore) -> None:
    first, second, third = store.insert_events([delivery("x"), delivery("x"), delivery("y")])
    assert first is not None and second is None and third is not None
    assert store.insert_events([delivery("x")]) == [None]
    assert len(store.list_events()) == 2


def test_the_same_delivery_id_from_another_source_is_another_event(store: AnyStore) -> None:
    results = store.insert_events([delivery("x"), delivery("x", source="gitlab")])
    assert None not in results


@sqlite_only
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


def test_an_event_is_found_by_a_unique_prefix(store: AnyStore) -> None:
    [event] = store.insert_events([delivery()])
    assert event is not None
    assert store.get_event(event.id[:8]).id == event.id


@pytest.mark.parametrize("wanted", ["nope", "", "abc"])
def test_an_unknown_id_says_how_to_list_events(store: AnyStore, wanted: str) -> None:
    with pytest.raises(EventNotFound) as caught:
        store.get_event(wanted)
    assert "mecha event ls" in caught.value.hint


def test_outcomes_record_decisions_tasks_and_state(store: AnyStore) -> None:
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


def test_matching_an_event_twice_makes_no_second_task(store: AnyStore) -> None:
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


def test_the_registry_version_moves_on_definition_changes_only(store: AnyStore) -> None:
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


def test_listing_filters_by_state_and_orders(store: AnyStore) -> None:
    events = store.insert_events([delivery(f"d{n}") for n in range(3)])
    assert all(e is not None for e in events)
    newest = store.list_events(limit=1)
    assert len(newest) == 1
    assert [
        e.delivery_id for e in store.list_events(state=EventState.RECEIVED, oldest_first=True)
    ] == ["d0", "d1", "d2"]
    assert store.list_events(state=EventState.SKIPPED) == []


def test_decided_events_are_stored_with_their_tasks_in_one_transaction(
    store: AnyStore,
) -> None:
    def decide(event: Event) -> EventOutcome:
        return EventOutcome(
            event_id=event.id, state=EventState.MATCHED,
            decisions=[Decision(worker="a", outcome=Outcome.MATCHED, rule=0)],
            tasks=[NewTask(worker="a", event_id=event.id, prompt=f"#{event.attrs['number']}")],
        )  # fmt: skip

    first, again = arrive(store, [delivery("z"), delivery("z")], decide)
    assert first is not None and again is None
    assert first.state is EventState.MATCHED
    assert store.get_event(first.id).state is EventState.MATCHED
    assert [t.prompt for t in store.list_tasks()] == ["#7"]  # the duplicate made no task
    assert [m.worker for m in store.list_matches(first.id)] == ["a"]


def test_an_undecided_event_stays_received(store: AnyStore) -> None:
    [event] = arrive(store, [delivery()], lambda event: None)
    assert event is not None
    assert store.get_event(event.id).state is EventState.RECEIVED
    assert store.list_tasks() == []


def decided(event: Event, *workers: str) -> EventOutcome:
    """``event`` taken by ``workers`` (one task each), or skipped when there are none."""
    return EventOutcome(
        event_id=event.id, state=EventState.MATCHED if workers else EventState.SKIPPED,
        decisions=[Decision(worker=w, outcome=Outcome.MATCHED, rule=0, reason="ok")
                   for w in workers],
        tasks=[NewTask(worker=w, event_id=event.id, prompt=f"p-{w}") for w in workers],
    )  # fmt: skip


def test_arrivals_keep_the_ids_and_times_they_carry(store: AnyStore) -> None:
    taken, skipped, waiting = (received(delivery(n), now=1000.0 + i)
                               for i, n in enumerate(("a", "b", "c")))  # fmt: skip
    made = store.insert_arrivals([
        Arrival(event=taken, outcome=decided(taken, "w1", "w2")),
        Arrival(event=skipped, outcome=decided(skipped)),
        Arrival(event=waiting),
    ])  # fmt: skip
    assert [None if m is None else sorted(t.worker for t in m) for m in made] == [
        ["w1", "w2"], [], []
    ]  # fmt: skip
    assert made[0] is not None
    assert {t.created_at for t in made[0]} == {1000.0}
    assert made[0] == store.list_tasks(event_id=taken.id)[::-1]
    for event, state in ((taken, "matched"), (skipped, "skipped"), (waiting, "received")):
        stored = store.get_event(event.id)
        assert (stored.state, stored.created_at, stored.updated_at) == (
            state, event.created_at, event.created_at
        )  # fmt: skip
        assert stored.raw == event.raw and stored.attrs == event.attrs
    steps = [(e.step, e.at, e.detail) for e in store.list_timeline(event_id=taken.id)]
    assert steps == [("received", 1000.0, "github pull_request.opened from mona"),
                     ("matched", 1000.0, "taken by w1, w2")]  # fmt: skip
    assert [m.task_id for m in store.list_matches(taken.id)] == [t.id for t in made[0]]
    assert [e.id for e in store.list_events(oldest_first=True)] == [
        taken.id, skipped.id, waiting.id
    ]  # fmt: skip


def test_a_duplicate_arrival_is_none_and_writes_nothing_of_itself(store: AnyStore) -> None:
    first = received(delivery("same"), now=5.0)
    again = received(delivery("same"), now=6.0)
    made = store.insert_arrivals([Arrival(event=first, outcome=decided(first, "w")),
                                  Arrival(event=again, outcome=decided(again, "w"))])  # fmt: skip
    assert made[1] is None and made[0] is not None
    assert store.insert_arrivals([Arrival(event=received(delivery("same"), now=7.0))]) == [None]
    with pytest.raises(EventNotFound):
        store.get_event(again.id)
    assert store.list_timeline(event_id=again.id) == []
    assert store.list_matches(again.id) == [] and store.list_tasks(event_id=again.id) == []
    assert [t.event_id for t in store.list_tasks()] == [first.id]


def test_an_outcome_that_failed_is_stored_with_its_error(store: AnyStore) -> None:
    event = received(delivery(), now=10.0)
    outcome = EventOutcome(event_id=event.id, state=EventState.FAILED, error="hydration: 502")
    assert store.insert_arrivals([Arrival(event=event, outcome=outcome)]) == [[]]
    stored = store.get_event(event.id)
    assert (stored.state, stored.error) == (EventState.FAILED, "hydration: 502")
    assert [(e.step, e.detail) for e in store.list_timeline(event_id=event.id)] == [
        ("received", "github pull_request.opened from mona"), ("event failed", "hydration: 502")
    ]  # fmt: skip


def test_a_batch_is_stored_whole_or_not_at_all(store: AnyStore) -> None:
    good = received(delivery("good"), now=1.0)
    bad = replace(received(delivery("bad"), now=1.0), attrs={"not json": object()})
    with pytest.raises(TypeError):
        store.insert_arrivals([Arrival(event=good, outcome=decided(good, "w")), Arrival(event=bad)])
    assert store.list_events() == [] and store.list_tasks() == []
    assert store.list_timeline(event_id=good.id) == []


def test_an_outcome_must_be_about_its_event() -> None:
    one, other = received(delivery("1"), now=1.0), received(delivery("2"), now=1.0)
    with pytest.raises(ValueError, match=f"outcome for event {other.id}"):
        Arrival(event=one, outcome=decided(other))


def test_a_brief_keeps_each_attributes_type_whatever_the_number_asked(store: AnyStore) -> None:
    event = received(delivery(), now=1.0)
    event = replace(event, attrs={"draft": False, "labels": {"a": [1, True]}, "none": None})
    store.insert_arrivals([Arrival(event=event)])
    for keys in (["draft"], ["labels"], ["draft", "labels", "none"], []):
        brief = store.get_event_brief(event.id, keys=keys)
        assert brief is not None
        assert brief.attrs == {k: event.attrs[k] for k in keys if event.attrs[k] is not None}
        assert all(type(brief.attrs[k]) is type(event.attrs[k]) for k in brief.attrs)


def test_a_prefix_of_more_than_one_event_finds_none(store: AnyStore) -> None:
    one, two = (replace(received(delivery(n), now=1.0), id=f"abcdef{n}" + "0" * 25)
                for n in ("1", "2"))  # fmt: skip
    store.insert_arrivals([Arrival(event=one), Arrival(event=two)])
    with pytest.raises(EventNotFound, match='more than one event has the id "abcdef"') as caught:
        store.get_event("abcdef")
    assert "mecha event ls" in caught.value.hint
    assert store.get_event("abcdef1").id == one.id


def test_decisions_are_listed_by_worker_name(store: AnyStore) -> None:
    event = received(delivery(), now=1.0)
    outcome = EventOutcome(
        event_id=event.id, state=EventState.SKIPPED,
        decisions=[Decision(worker=w, outcome=Outcome.NOT_MATCHED, reason=f"not {w}")
                   for w in ("zed", "Alpha", "mid")],
    )  # fmt: skip
    store.insert_arrivals([Arrival(event=event, outcome=outcome)])
    matches = store.list_matches(event.id)
    assert [(m.worker, m.reason, m.rule) for m in matches] == [
        ("Alpha", "not Alpha", -1), ("mid", "not mid", -1), ("zed", "not zed", -1)
    ]  # fmt: skip
