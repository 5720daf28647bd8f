"""Claims across nodes on every store: a write another node is calling is left to it
while its lease holds (its heartbeat renews it), and a claim of a task respects the
worker's limits across nodes (its concurrency and its shared token bucket)."""

from __future__ import annotations

import time

from mecha.policy.writes import Place, Write, WriteState, ledger_key
from mecha.store import NodeRecord, TaskUpdate, WorkerLimits, WritePlan, WriteUpdate
from mecha.task import NewTask, Task, TaskState
from mecha.timeline import Step
from tests.integration.store.stores import AnyStore

PLACE = Place(forge="github", repo="octo/hello", number=7, head_sha="abc123")
OPEN = frozenset({WriteState.PLANNED, WriteState.CALLING})
CALLING = frozenset({WriteState.CALLING})
PENDING = frozenset({TaskState.PENDING})
RUNNING = frozenset({TaskState.RUNNING})


def planned(store: AnyStore, event: str = "ev1") -> Write:
    key = ledger_key(event_id=event, worker="w", action="comment", target=PLACE.name,
                     head_sha=PLACE.head_sha)  # fmt: skip
    write = Write(key=key, worker="w", action="comment", place=PLACE, body="hello")
    store.plan_writes([WritePlan(task_id="t1", event_id=event, writes=[write])])
    return write


def write_claim(write: Write, node: str, lease: float = 30.0) -> WriteUpdate:
    return WriteUpdate(key=write.key, state=WriteState.CALLING, only_from=OPEN,
                       start_attempt=True, node=node, lease=lease)  # fmt: skip


def test_a_write_being_called_is_not_claimed_by_another_node_until_its_lease_ends(
    store: AnyStore,
) -> None:
    write = planned(store)
    before = time.time()
    [mine] = store.update_writes([write_claim(write, "node-a", lease=30)])
    assert mine is not None and mine.node == "node-a" and mine.lease_until >= before + 30
    # node B's poll does not see it, and B's claim is refused while A's lease holds
    assert store.due_writes(now=time.time()) == []
    assert store.update_writes([write_claim(write, "node-b")]) == [None]
    # once the lease has ended (seen from later), it is due and B's claim takes it
    [due] = store.due_writes(now=mine.lease_until + 1)
    assert due.key == write.key and due.state is WriteState.CALLING and due.attempts == 1
    # the finish of a call is not a claim: it applies whoever holds the lease
    done = WriteUpdate(key=write.key, state=WriteState.DONE, only_from=CALLING, remote_id="5")
    [finished] = store.update_writes([done])
    assert finished is not None and finished.state is WriteState.DONE
    assert finished.lease_until == 0 and finished.node == "node-a"


def test_a_claim_takes_a_calling_write_whose_lease_ended(store: AnyStore) -> None:
    write = planned(store)
    [first] = store.update_writes([write_claim(write, "node-a", lease=0.05)])
    assert first is not None
    deadline = time.monotonic() + 60
    while time.time() <= first.lease_until:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    [taken] = store.update_writes([write_claim(write, "node-b")])
    assert taken is not None and taken.node == "node-b" and taken.attempts == 2


def test_a_heartbeat_renews_the_leases_of_the_writes_its_node_calls(store: AnyStore) -> None:
    a, b = planned(store, "ev1"), planned(store, "ev2")
    store.register_node(NodeRecord(id="node-a", host="h", pid=1))
    store.update_writes([write_claim(a, "node-a", lease=1), write_claim(b, "node-b", lease=1)])
    [before_a, before_b] = store.list_writes(event_id="ev1") + store.list_writes(event_id="ev2")
    store.heartbeat("node-a", lease=600)
    [after_a, after_b] = store.list_writes(event_id="ev1") + store.list_writes(event_id="ev2")
    assert after_a.lease_until >= before_a.lease_until + 598  # renewed for node A
    assert after_b.lease_until == before_b.lease_until  # not node A's


def test_recover_ends_the_leases_of_writes_left_calling(store: AnyStore) -> None:
    write = planned(store)
    store.update_writes([write_claim(write, "node-a", lease=600)])
    assert store.due_writes(now=time.time()) == []
    store.recover()  # one serve owns the database: nothing else is calling it
    [due] = store.due_writes(now=time.time())
    assert due.key == write.key and due.state is WriteState.CALLING


def tasks(store: AnyStore, count: int, worker: str = "w") -> list[Task]:
    return store.create_tasks(
        [NewTask(worker=worker, event_id="", prompt=f"p{n}") for n in range(count)]
    )


def task_claim(task: Task, limits: WorkerLimits, node: str = "node-a") -> TaskUpdate:
    return TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING,
                      start_attempt=True, step=Step.DISPATCHED, node=node, lease=30,
                      limits=limits)  # fmt: skip


def test_a_claim_is_held_back_while_its_worker_runs_its_concurrency(store: AnyStore) -> None:
    one, two, three, other = [*tasks(store, 3), *tasks(store, 1, worker="v")]
    limits = WorkerLimits(concurrency=2)
    # in one batch, from two nodes: the third claim sees the first two running
    got = store.update_tasks([
        task_claim(one, limits), task_claim(two, limits, "node-b"), task_claim(three, limits),
        task_claim(other, WorkerLimits(concurrency=1)),
    ])  # fmt: skip
    states = [t.state if t is not None else None for t in got]
    assert states == [TaskState.RUNNING, TaskState.RUNNING, TaskState.PENDING, TaskState.RUNNING]
    held = got[2]
    assert held is not None and held.id == three.id and held.attempts == 0
    steps = [e.step for e in store.list_timeline(task_id=three.id)]
    assert Step.DISPATCHED not in steps  # a claim held back writes nothing
    # one of the two finishes: the third may go
    store.update_tasks([TaskUpdate(task_id=one.id, state=TaskState.COMPLETED, only_from=RUNNING)])
    [went] = store.update_tasks([task_claim(three, limits, "node-c")])
    assert went is not None and went.state is TaskState.RUNNING


def test_a_claim_of_a_task_not_pending_is_refused_not_held_back(store: AnyStore) -> None:
    [task] = tasks(store, 1)
    store.update_tasks([TaskUpdate(task_id=task.id, state=TaskState.CANCELLED, only_from=PENDING)])
    assert store.update_tasks([task_claim(task, WorkerLimits(concurrency=5))]) == [None]


def test_claims_share_their_workers_token_bucket(store: AnyStore) -> None:
    limits = WorkerLimits(concurrency=100, rate=0.001, burst=2)  # one token per 1000 s
    made = tasks(store, 3)
    got = store.update_tasks([task_claim(t, limits, f"node-{n}") for n, t in enumerate(made)])
    assert [t.state for t in got if t is not None] == [
        TaskState.RUNNING, TaskState.RUNNING, TaskState.PENDING,
    ]  # fmt: skip
    # the bucket is the worker's, kept between batches
    [again] = store.update_tasks([task_claim(made[2], limits)])
    assert again is not None and again.state is TaskState.PENDING
    # without a rate limit, only the concurrency counts
    [free] = store.update_tasks([task_claim(made[2], WorkerLimits(concurrency=100))])
    assert free is not None and free.state is TaskState.RUNNING


def test_a_clean_stop_ends_the_leases_of_the_writes_its_node_left_calling(
    store: AnyStore,
) -> None:
    mine, theirs = planned(store, "ev1"), planned(store, "ev2")
    store.register_node(NodeRecord(id="node-a", host="h", pid=1))
    store.update_writes([write_claim(mine, "node-a", lease=600),
                         write_claim(theirs, "node-b", lease=600)])  # fmt: skip
    store.stop_node("node-a")  # its drain gave up on the write: the next start takes it
    assert [record.key for record in store.due_writes(now=time.time())] == [mine.key]


def test_a_late_answer_from_a_node_whose_task_was_taken_over_is_refused(
    store: AnyStore,
) -> None:
    [task, other] = tasks(store, 2)
    [first] = store.update_tasks([TaskUpdate(
        task_id=task.id, state=TaskState.RUNNING, only_from=PENDING, start_attempt=True,
        node="node-a", lease=0.01,
    )])  # fmt: skip
    assert first is not None
    assert store.take_back(now=time.time() + 1, exclude_node="node-b") == [task.id]
    store.update_tasks([TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING,
                                   start_attempt=True, node="node-b", lease=30)])  # fmt: skip

    def done(node: str, task_id: str = task.id) -> TaskUpdate:
        return TaskUpdate(task_id=task_id, state=TaskState.COMPLETED, only_from=RUNNING,
                          node=node, result={"output": node})  # fmt: skip

    assert store.update_tasks([done("node-a")]) == [None]  # node A woke up too late
    [finished] = store.update_tasks([done("node-b")])
    assert finished is not None and finished.result["output"] == "node-b"
    # a change of no node (`mecha task cancel`) is not fenced
    store.update_tasks([TaskUpdate(task_id=other.id, state=TaskState.RUNNING, only_from=PENDING,
                                   start_attempt=True, node="node-a", lease=30)])  # fmt: skip
    [cancelled] = store.update_tasks([TaskUpdate(
        task_id=other.id, state=TaskState.CANCELLED, only_from=RUNNING,
    )])  # fmt: skip
    assert cancelled is not None and cancelled.state is TaskState.CANCELLED
