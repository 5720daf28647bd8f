"""Registered workers, on every store: adding, reading, removing, state changes; close and
threads."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace

import pytest

from mecha.errors import StoreError, WorkerExists, WorkerNotFound, WorkerStateError
from mecha.store import Store
from mecha.timeline import Step, TimelineEntry
from mecha.worker.kind import WorkerKind, WorkerState
from tests.integration.store.stores import AnyStore, names, worker

# ---------------------------------------------------------------- add_workers


def test_add_workers_registers_every_record(store: AnyStore) -> None:
    """All records of a batch are stored, with their fields."""
    store.add_workers([worker("b", source="/w/b.yml"), worker("a", state=WorkerState.ERROR)])
    assert store.count_workers() == 2
    assert store.get_worker("b").source == "/w/b.yml"
    assert store.get_worker("a").state is WorkerState.ERROR


def test_add_workers_stamps_created_and_updated_times(store: AnyStore) -> None:
    """Records without times get time.time() for created_at and updated_at."""
    before = time.time()
    store.add_workers([worker("w")])
    got = store.get_worker("w")
    assert before <= got.created_at == got.updated_at <= time.time()
    assert got.started_at == 0.0


def test_a_taken_name_adds_nothing(store: AnyStore) -> None:
    """A batch with one registered name fails whole; the new names are not added."""
    store.add_workers([worker("taken")])
    with pytest.raises(WorkerExists, match='"taken" is already registered') as caught:
        store.add_workers([worker("fresh"), worker("taken")])
    assert names(store) == ["taken"]
    assert "fresh" not in caught.value.message
    assert caught.value.hint


def test_a_name_repeated_in_the_batch_adds_nothing(store: AnyStore) -> None:
    """A batch that names a worker twice fails whole and says so."""
    with pytest.raises(WorkerExists, match='"twice" appears more than once'):
        store.add_workers([worker("once"), worker("twice"), worker("twice")])
    assert store.count_workers() == 0


def test_worker_exists_names_every_clashing_name(store: AnyStore) -> None:
    """Every taken name and every repeated name is in one error message."""
    store.add_workers([worker("a"), worker("b")])
    with pytest.raises(WorkerExists) as caught:
        store.add_workers([worker("b"), worker("a"), worker("c"), worker("c")])
    assert '"a", "b" are already registered' in caught.value.message
    assert '"c" appears more than once' in caught.value.message
    assert names(store) == ["a", "b"]


def test_a_definition_that_is_not_json_is_refused(store: AnyStore) -> None:
    """A definition json cannot encode gives StoreError and adds nothing."""
    with pytest.raises(StoreError, match="not plain JSON"):
        store.add_workers([worker("ok"), worker("bad", definition={"when": object()})])
    assert store.count_workers() == 0


# ---------------------------------------------------------------- get, list, count


def test_get_worker_returns_the_stored_record(store: AnyStore) -> None:
    """Every field comes back as it was added."""
    added = worker("w", source="/w.yml", error="e", endpoint="http://x", container_id="c1")
    added = replace(added, kind=WorkerKind.MANAGED, started_at=4.0, created_at=5.0)
    store.add_workers([added])
    got = store.get_worker("w")
    assert got == replace(added, updated_at=got.updated_at)


def test_get_worker_of_an_unknown_name_raises_worker_not_found(store: AnyStore) -> None:
    """A missing name gives WorkerNotFound naming it, with a hint to list workers."""
    with pytest.raises(WorkerNotFound, match='"ghost"') as caught:
        store.get_worker("ghost")
    assert "mecha worker ls" in caught.value.hint


def test_list_workers_is_sorted_by_name(store: AnyStore) -> None:
    """Workers come back in name order, whatever order they were added in."""
    store.add_workers([worker("m"), worker("B"), worker("a"), worker("z-1"), worker("z.0")])
    assert names(store) == ["B", "a", "m", "z-1", "z.0"]


def test_list_workers_of_an_empty_store_is_empty(store: AnyStore) -> None:
    """No workers, empty list."""
    assert store.list_workers() == []


def test_listing_200_workers_is_one_cheap_query(store: AnyStore) -> None:
    """200 workers are listed in order; the time it takes is printed (run with -s)."""
    store.add_workers([worker(f"w{i:03d}") for i in reversed(range(200))])
    started = time.perf_counter()
    listed = store.list_workers()
    elapsed = time.perf_counter() - started
    print(f"\nlist_workers: 200 workers in {elapsed * 1000:.2f} ms")
    assert [record.name for record in listed] == [f"w{i:03d}" for i in range(200)]


def test_count_workers_counts_registered_workers(store: AnyStore) -> None:
    """count_workers follows adds and removes."""
    assert store.count_workers() == 0
    store.add_workers([worker("a"), worker("b")])
    store.remove_worker("a", allowed_states={WorkerState.OFFLINE})
    assert store.count_workers() == 1


# ---------------------------------------------------------------- remove_worker


def test_remove_worker_deletes_it(store: AnyStore) -> None:
    """A worker in an allowed state is gone afterwards; the others stay."""
    store.add_workers([worker("a"), worker("b")])
    store.remove_worker("a", allowed_states={WorkerState.OFFLINE})
    assert names(store) == ["b"]


def test_removing_an_unknown_worker_raises_worker_not_found(store: AnyStore) -> None:
    """A missing name gives WorkerNotFound."""
    with pytest.raises(WorkerNotFound, match='"ghost"'):
        store.remove_worker("ghost", allowed_states=set(WorkerState))


def test_removing_a_worker_in_a_disallowed_state_keeps_it(store: AnyStore) -> None:
    """WorkerStateError names the current state and hints to stop the worker first."""
    store.add_workers([worker("live", state=WorkerState.ONLINE)])
    with pytest.raises(WorkerStateError, match="is online") as caught:
        store.remove_worker("live", allowed_states={WorkerState.OFFLINE})
    assert "mecha worker stop live" in caught.value.hint
    assert names(store) == ["live"]


# ---------------------------------------------------------------- set_worker_state


def test_set_worker_state_returns_and_stores_the_new_record(store: AnyStore) -> None:
    """The returned record is what get_worker reads afterwards."""
    store.add_workers([worker("w")])
    returned = store.set_worker_state("w", WorkerState.ERROR, error="health check failed")
    assert returned == store.get_worker("w")
    assert (returned.state, returned.error) == (WorkerState.ERROR, "health check failed")


def test_replace_updates_the_definition_and_keeps_runtime_state(store: AnyStore) -> None:
    """add_workers(replace=True): new definition, same state, endpoint and created_at."""
    store.add_workers([worker("w", created_at=1.0)])
    store.set_worker_state("w", WorkerState.ONLINE, endpoint="http://127.0.0.1:1")
    store.add_workers([worker("w", definition={"v": 2}), worker("new")], replace=True)
    after = store.get_worker("w")
    assert after.definition == {"v": 2}
    assert (after.state, after.endpoint, after.created_at) == (
        WorkerState.ONLINE,
        "http://127.0.0.1:1",
        1.0,
    )
    assert store.count_workers() == 2


def test_replace_still_refuses_a_name_repeated_in_the_batch(store: AnyStore) -> None:
    """Two files with one name are a mistake even when replacing; nothing is written."""
    with pytest.raises(WorkerExists, match="more than once"):
        store.add_workers([worker("w"), worker("w")], replace=True)
    assert store.count_workers() == 0


def test_conditional_state_change_happens_only_from_the_given_states(store: AnyStore) -> None:
    """only_from: the change is refused, and nothing written, if another state is current."""
    store.add_workers([worker("w")])
    with pytest.raises(WorkerStateError, match="offline now"):
        store.set_worker_state("w", WorkerState.ERROR, only_from={WorkerState.ONLINE})
    assert store.get_worker("w").state is WorkerState.OFFLINE
    store.set_worker_state("w", WorkerState.ONLINE)
    changed = store.set_worker_state("w", WorkerState.ERROR, only_from={WorkerState.ONLINE})
    assert changed.state is WorkerState.ERROR


def test_set_worker_state_updates_updated_at(store: AnyStore) -> None:
    """updated_at moves forward; created_at stays."""
    store.add_workers([worker("w", created_at=1.0, updated_at=1.0)])
    returned = store.set_worker_state("w", WorkerState.BUSY)
    assert returned.created_at == 1.0
    assert returned.updated_at > 1.0


def test_going_online_from_offline_sets_started_at(store: AnyStore) -> None:
    """OFFLINE → ONLINE stamps started_at with the current time."""
    store.add_workers([worker("w")])
    before = time.time()
    returned = store.set_worker_state("w", WorkerState.ONLINE)
    assert before <= returned.started_at <= time.time()


def test_other_changes_keep_started_at(store: AnyStore) -> None:
    """ONLINE → BUSY → ONLINE keeps the started_at of the first start."""
    store.add_workers([worker("w")])
    started = store.set_worker_state("w", WorkerState.ONLINE).started_at
    store.set_worker_state("w", WorkerState.BUSY)
    assert store.set_worker_state("w", WorkerState.ONLINE).started_at == started


def test_endpoint_and_container_id_change_only_when_given(store: AnyStore) -> None:
    """None keeps the stored endpoint/container_id; a string (even "") replaces it."""
    store.add_workers([worker("w")])
    store.set_worker_state("w", WorkerState.ONLINE, endpoint="http://x:1", container_id="c1")
    kept = store.set_worker_state("w", WorkerState.BUSY)
    assert (kept.endpoint, kept.container_id) == ("http://x:1", "c1")
    cleared = store.set_worker_state("w", WorkerState.OFFLINE, endpoint="", container_id="")
    assert (cleared.endpoint, cleared.container_id) == ("", "")


def test_set_worker_state_of_an_unknown_worker_raises_worker_not_found(
    store: AnyStore,
) -> None:
    """A missing name gives WorkerNotFound and creates nothing."""
    with pytest.raises(WorkerNotFound, match='"ghost"'):
        store.set_worker_state("ghost", WorkerState.ONLINE)
    assert store.count_workers() == 0


# ---------------------------------------------------------------- the Protocol, close, threads


def test_the_store_satisfies_the_store_protocol(store: AnyStore) -> None:
    """mypy checks the assignment (and STORES's types); at run time every Protocol method
    is there."""
    typed: Store = store
    try:
        wanted = {n for n in vars(Store) if not n.startswith("_") and callable(vars(Store)[n])}
        assert wanted
        assert all(callable(getattr(typed, name, None)) for name in wanted)
    finally:
        typed.close()


def test_a_closed_store_gives_store_error(store: AnyStore) -> None:
    """Any call after close() gives StoreError; close() itself may be called twice."""
    opened = store
    opened.close()
    opened.close()
    with pytest.raises(StoreError, match="closed"):
        opened.count_workers()


def test_calls_from_several_threads_take_turns(store: AnyStore) -> None:
    """Eight threads adding and updating workers at once leave every change in place."""
    failures: list[BaseException] = []

    def run(thread: int) -> None:
        try:
            for i in range(25):
                store.add_workers([worker(f"t{thread}-{i}")])
                store.set_worker_state(f"t{thread}-{i}", WorkerState.ONLINE)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert {r.state for r in store.list_workers()} == {WorkerState.ONLINE}
    assert store.count_workers() == 200


def test_writers_on_several_threads_lose_no_change(store: AnyStore) -> None:
    """Threads switched as often as Python allows: every change of every thread is kept."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=_note, args=(store, f"w{n}", 100)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(before)
    counts = [len(store.list_timeline(worker=f"w{n}")) for n in range(8)]
    assert counts == [100] * 8


def _note(store: AnyStore, worker: str, times: int) -> None:
    for n in range(times):
        store.add_timeline([TimelineEntry(at=time.time(), step=Step.DEFINITION, worker=worker,
                                          detail=f"note {n}")])  # fmt: skip
