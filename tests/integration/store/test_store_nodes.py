"""Nodes and leases on every store: a claim records its node and lease, a heartbeat renews
only its own node's leases, and a sweep takes back only running tasks whose lease ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from mecha.store import NodeRecord, TaskUpdate
from mecha.store.postgres.store import open_postgres
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import Step
from tests.integration.store.stores import AnyStore

PENDING = frozenset({TaskState.PENDING})


def node(node_id: str, **fields: object) -> NodeRecord:
    given: dict[str, object] = {"host": "h", "pid": 42, "version": "9.9", **fields}
    return NodeRecord(id=node_id, **given)  # type: ignore[arg-type]


def api_tasks(store: AnyStore, count: int, worker: str = "w") -> list[Task]:
    made = [NewTask(worker=worker, event_id="", prompt=f"p{n}") for n in range(count)]
    return store.create_tasks(made)


def claim(
    store: AnyStore, tasks: Sequence[Task], *, node_id: str = "", lease: float = 30.0
) -> None:
    done = store.update_tasks([
        TaskUpdate(task_id=t.id, state=TaskState.RUNNING, only_from=PENDING, start_attempt=True,
                   step=Step.DISPATCHED, node=node_id, lease=lease)
        for t in tasks
    ])  # fmt: skip
    assert all(t is not None for t in done)


def in_flight(store: AnyStore) -> dict[str, int]:
    return {n.id: n.in_flight for n in store.list_nodes()}


def test_a_node_is_registered_heartbeats_and_stops(store: AnyStore) -> None:
    before = time.time()
    store.register_node(node("a-1-0001", started_at=before))
    store.register_node(node("b-2-0002"))
    [a, b] = store.list_nodes()
    assert (a.id, a.host, a.pid, a.version) == ("a-1-0001", "h", 42, "9.9")
    assert a.started_at == before and a.heartbeat_at >= before and a.stopped_at == 0
    assert b.id == "b-2-0002" and b.started_at >= before  # 0 given: now
    assert a.state(now=a.heartbeat_at + 1, lease=30) == "alive"
    assert a.state(now=a.heartbeat_at + 31, lease=30) == "stale"
    beat = a.heartbeat_at
    assert store.heartbeat("a-1-0001", lease=30) == 0  # no task runs under it
    [a, _] = store.list_nodes()
    assert a.heartbeat_at >= beat
    store.stop_node("b-2-0002")
    [_, b] = store.list_nodes()
    assert b.stopped_at >= b.started_at > 0
    assert b.state(now=b.heartbeat_at, lease=30) == "stopped"


def test_a_node_registered_again_is_one_node(store: AnyStore) -> None:
    store.register_node(node("a-1-0001"))
    store.stop_node("a-1-0001")
    store.register_node(node("a-1-0001", version="10.0"))
    [a] = store.list_nodes()
    assert a.version == "10.0" and a.stopped_at == 0


def test_a_claim_records_its_node_and_lease(store: AnyStore) -> None:
    store.register_node(node("n1"))
    [task, other] = api_tasks(store, 2)
    claim(store, [task], node_id="n1", lease=30)
    assert in_flight(store) == {"n1": 1}
    now = time.time()
    assert store.take_back(now=now) == []  # its lease runs 30 s more
    assert store.take_back(now=now + 60) == [task.id]
    assert store.get_task(task.id).state is TaskState.PENDING
    assert store.get_task(task.id).attempts == 1  # it was sent once
    assert store.get_task(other.id).state is TaskState.PENDING  # never running: untouched
    last = store.list_timeline(task_id=task.id)[-1]
    assert last.step == Step.REQUEUED and "n1" in last.detail
    assert in_flight(store) == {"n1": 0}


def test_a_heartbeat_renews_only_its_own_nodes_leases(store: AnyStore) -> None:
    for n in ("n1", "n2"):
        store.register_node(node(n))
    [mine, theirs, done] = api_tasks(store, 3)
    claim(store, [mine, done], node_id="n1", lease=10)
    claim(store, [theirs], node_id="n2", lease=10)
    store.update_tasks([TaskUpdate(task_id=done.id, state=TaskState.COMPLETED,
                                   only_from=frozenset({TaskState.RUNNING}))])  # fmt: skip
    assert store.heartbeat("n1", lease=1000) == 1  # the completed task is not renewed
    taken = store.take_back(now=time.time() + 100)
    assert taken == [theirs.id]
    assert store.get_task(mine.id).state is TaskState.RUNNING
    assert store.get_task(done.id).state is TaskState.COMPLETED
    assert in_flight(store) == {"n1": 1, "n2": 0}


def test_a_sweep_takes_expired_and_nodeless_tasks_but_never_its_own(store: AnyStore) -> None:
    [live, nodeless, expired, own] = api_tasks(store, 4)
    claim(store, [live], node_id="n1", lease=1000)
    claim(store, [nodeless])  # as a database from before leases holds them
    claim(store, [expired], node_id="n2", lease=0)
    claim(store, [own], node_id="me", lease=0)
    later = time.time() + 1
    assert store.take_back(now=later, exclude_node="me") == [nodeless.id, expired.id]
    assert store.get_task(live.id).state is TaskState.RUNNING
    assert store.get_task(own.id).state is TaskState.RUNNING
    details = {t.id: store.list_timeline(task_id=t.id)[-1].detail for t in (nodeless, expired)}
    assert "stopped" in details[nodeless.id] and "n2" in details[expired.id]
    assert store.take_back(now=later, exclude_node="me") == []
    assert store.take_back(now=later) == [own.id]  # a sweep of no node takes every one


def test_a_sweep_takes_at_most_its_limit_oldest_first(store: AnyStore) -> None:
    tasks = api_tasks(store, 5)
    claim(store, tasks, node_id="dead", lease=0)
    later = time.time() + 1
    first = store.take_back(now=later, limit=2)
    rest = store.take_back(now=later)
    assert len(first) == 2 and len(rest) == 3
    assert sorted(first + rest) == sorted(t.id for t in tasks)


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_two_nodes_sweeping_at_once_take_each_task_once(store: AnyStore, pg_url: str) -> None:
    tasks = api_tasks(store, 300)
    claim(store, tasks, node_id="dead", lease=0)
    other = open_postgres(pg_url)
    try:
        barrier = threading.Barrier(2)
        taken: dict[str, list[str]] = {"a": [], "b": []}

        def sweep(name: str, on: AnyStore) -> None:
            barrier.wait()
            while got := on.take_back(now=time.time() + 1, limit=7):
                taken[name].extend(got)

        threads = [threading.Thread(target=sweep, args=("a", store)),
                   threading.Thread(target=sweep, args=("b", other))]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        other.close()
    both = taken["a"] + taken["b"]
    assert sorted(both) == sorted(t.id for t in tasks)  # every task once, none twice
    assert not set(taken["a"]) & set(taken["b"])
    requeued = sum(
        1 for t in tasks for e in store.list_timeline(task_id=t.id) if e.step == Step.REQUEUED
    )
    assert requeued == len(tasks)
