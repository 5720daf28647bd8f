"""Per-key flow control on every store: a key's tasks take turns, oldest event first; with
``supersede`` (or ``debounce``) a newer event's task replaces the waiting one, and a
running one is marked: it ends ``superseded`` instead of completing, failing or going back
to pending."""

from __future__ import annotations

import threading
import time

from mecha.event import EventState
from mecha.store import EventOutcome, TaskUpdate
from mecha.task import FlowMark, NewTask, Task, TaskState
from mecha.timeline import Step
from tests.integration.store.stores import AnyStore, arrive, delivery

PENDING = frozenset({TaskState.PENDING})
RUNNING = frozenset({TaskState.RUNNING})
KEY = "octo/app#7"


def keyed(
    store: AnyStore, number: str, *, at: float, key: str = KEY, worker: str = "w", **flow: float
) -> Task:
    """The task an event ``number`` (arrived at ``at``) makes for ``worker`` under ``key``."""
    mark = FlowMark(key=key, at=at, supersede=bool(flow.get("supersede")),
                    debounce=float(flow.get("debounce", 0)))  # fmt: skip
    made: list[Task] = []

    def decide(event: object) -> EventOutcome:
        event_id = event.id  # type: ignore[attr-defined]
        task = NewTask(worker=worker, event_id=event_id, prompt=f"p{number}", flow=mark)
        return EventOutcome(event_id=event_id, state=EventState.MATCHED, tasks=[task])

    arrive(store, [delivery(f"d-{number}-{worker}-{key}")], decide, made)
    [task] = made
    return store.get_task(task.id)


def claim(task: Task, node: str = "") -> TaskUpdate:
    return TaskUpdate(task_id=task.id, state=TaskState.RUNNING, only_from=PENDING,
                      start_attempt=True, keyed=bool(task.flow_key), node=node)  # fmt: skip


def done(task: Task, state: TaskState = TaskState.COMPLETED) -> TaskUpdate:
    return TaskUpdate(task_id=task.id, state=state, only_from=RUNNING, result={"ok": 1})


def test_a_keys_tasks_run_one_at_a_time_oldest_event_first(store: AnyStore) -> None:
    now = time.time()
    first, second = keyed(store, "1", at=now), keyed(store, "2", at=now + 1)
    other = keyed(store, "3", at=now + 2, key="octo/app#8")
    assert (first.flow_key, first.flow_at) == (KEY, now)
    # the newer one waits for the older (pending) one: held back, still pending
    [held] = store.update_tasks([claim(second)])
    assert held is not None and held.state is TaskState.PENDING and held.attempts == 0
    [running] = store.update_tasks([claim(first)])
    assert running is not None and running.state is TaskState.RUNNING
    # ... and for the running one; another key is not held back
    [held] = store.update_tasks([claim(second)])
    assert held is not None and held.state is TaskState.PENDING
    [free] = store.update_tasks([claim(other)])
    assert free is not None and free.state is TaskState.RUNNING
    store.update_tasks([done(first)])
    [running] = store.update_tasks([claim(second)])
    assert running is not None and running.state is TaskState.RUNNING
    # without supersede nothing was replaced: every task ran
    assert store.get_task(first.id).state is TaskState.COMPLETED


def test_a_newer_event_supersedes_the_waiting_task_and_marks_the_running_one(
    store: AnyStore,
) -> None:
    now = time.time()
    first = keyed(store, "1", at=now, supersede=True)
    store.update_tasks([claim(first)])
    second = keyed(store, "2", at=now + 1, supersede=True)
    third = keyed(store, "3", at=now + 2, supersede=True)
    replaced = store.get_task(second.id)
    assert replaced.state is TaskState.SUPERSEDED and replaced.superseded_by == third.id
    assert replaced.finished_at > 0
    running = store.get_task(first.id)
    assert running.state is TaskState.RUNNING and running.superseded_by == third.id
    steps = [(e.step, e.detail) for e in store.list_timeline(task_id=second.id)]
    assert (Step.SUPERSEDED, f"superseded by task {third.id} (a newer event "
            f"{third.event_id} for {KEY}); never sent") in steps  # fmt: skip
    # a claim of it (queued before it gave way) gets it back as it stands, for counting
    [back] = store.update_tasks([claim(second)])
    assert back is not None and back.state is TaskState.SUPERSEDED and back.attempts == 0
    # the waiting one's event is done (its only task gave way), not failed
    assert store.get_event(second.event_id).state is EventState.COMPLETED
    # the newest waits for the marked running one to end
    [held] = store.update_tasks([claim(third)])
    assert held is not None and held.state is TaskState.PENDING
    # the marked one's answer is refused: it may only end superseded
    assert store.update_tasks([done(first)]) == [None]
    assert store.update_tasks([done(first, TaskState.FAILED)]) == [None]
    retry = TaskUpdate(task_id=first.id, state=TaskState.PENDING, only_from=RUNNING)
    assert store.update_tasks([retry]) == [None]
    [ended] = store.update_tasks([done(first, TaskState.SUPERSEDED)])
    assert ended is not None and ended.state is TaskState.SUPERSEDED and ended.result == {"ok": 1}
    assert store.get_event(first.event_id).state is EventState.COMPLETED
    [newest] = store.update_tasks([claim(third)])
    assert newest is not None and newest.state is TaskState.RUNNING
    # an unmarked task cannot be made superseded
    assert store.update_tasks([done(third, TaskState.SUPERSEDED)]) == [None]


def test_a_marked_task_may_still_be_cancelled(store: AnyStore) -> None:
    now = time.time()
    first = keyed(store, "1", at=now, supersede=True)
    store.update_tasks([claim(first)])
    keyed(store, "2", at=now + 1, supersede=True)
    cancel = TaskUpdate(task_id=first.id, state=TaskState.CANCELLED, only_from=RUNNING)
    [cancelled] = store.update_tasks([cancel])
    assert cancelled is not None and cancelled.state is TaskState.CANCELLED


def test_an_older_event_arriving_late_is_born_superseded(store: AnyStore) -> None:
    now = time.time()
    newer = keyed(store, "2", at=now + 5, supersede=True)
    older = keyed(store, "1", at=now, supersede=True)
    assert older.state is TaskState.SUPERSEDED and older.superseded_by == newer.id
    assert store.get_task(newer.id).state is TaskState.PENDING
    assert store.get_event(older.event_id).state is EventState.COMPLETED


def test_debounce_waits_from_the_events_arrival_and_a_newer_event_starts_it_again(
    store: AnyStore,
) -> None:
    now = time.time()
    first = keyed(store, "1", at=now, debounce=30)
    assert first.next_retry_at == now + 30
    assert store.due_tasks(now=now + 1) == []
    [wait] = [e for e in store.list_timeline(task_id=first.id) if e.step == Step.WAITING]
    assert wait.detail.startswith(f"debounce: waits until {KEY} has been quiet for 30s")
    second = keyed(store, "2", at=now + 10, debounce=30)
    # debounce alone replaces the waiting task but does not mark a running one
    assert store.get_task(first.id).state is TaskState.SUPERSEDED
    assert [t.id for t in store.due_tasks(now=now + 35)] == []
    assert [t.id for t in store.due_tasks(now=now + 40)] == [second.id]


def test_debounce_without_supersede_leaves_the_running_task_alone(store: AnyStore) -> None:
    now = time.time()
    first = keyed(store, "1", at=now, debounce=1)
    store.update_tasks([claim(first)])
    keyed(store, "2", at=now + 1, debounce=1)
    running = store.get_task(first.id)
    assert running.state is TaskState.RUNNING and running.superseded_by == ""
    [finished] = store.update_tasks([done(first)])
    assert finished is not None and finished.state is TaskState.COMPLETED


def test_keys_are_per_worker(store: AnyStore) -> None:
    now = time.time()
    mine = keyed(store, "1", at=now, supersede=True, worker="a")
    theirs = keyed(store, "2", at=now + 1, supersede=True, worker="b")
    assert store.get_task(mine.id).state is TaskState.PENDING
    [running] = store.update_tasks([claim(theirs)])
    assert running is not None and running.state is TaskState.RUNNING


def test_a_stop_ends_a_marked_task_superseded_and_requeues_the_rest(store: AnyStore) -> None:
    now = time.time()
    first = keyed(store, "1", at=now, supersede=True)
    plain = keyed(store, "9", at=now, key="octo/app#9")
    store.update_tasks([claim(first), claim(plain)])
    second = keyed(store, "2", at=now + 1, supersede=True)
    requeued, _ = store.recover()
    assert requeued == 1
    assert store.get_task(first.id).state is TaskState.SUPERSEDED
    assert store.get_task(plain.id).state is TaskState.PENDING
    assert store.get_task(second.id).state is TaskState.PENDING
    [last] = [e for e in store.list_timeline(task_id=first.id)][-1:]
    assert last.step == Step.SUPERSEDED and "nothing is written" in last.detail


def test_a_dead_nodes_marked_task_ends_superseded_when_taken_back(store: AnyStore) -> None:
    now = time.time()
    first = keyed(store, "1", at=now, supersede=True)
    lost = TaskUpdate(task_id=first.id, state=TaskState.RUNNING, only_from=PENDING,
                      start_attempt=True, keyed=True, node="dead", lease=0.01)  # fmt: skip
    store.update_tasks([lost])
    keyed(store, "2", at=now + 1, supersede=True)
    assert store.take_back(now=time.time() + 60) == []
    assert store.get_task(first.id).state is TaskState.SUPERSEDED


def test_two_nodes_storing_one_keys_events_at_once_leave_one_waiting_task(pg_url: str) -> None:
    """Two PostgreSQL stores on one database (two nodes), each storing a stream of events
    for one key at once: whichever commits second sees the first's task and replaces it
    (or gives way to it if its own event is older), so one task waits: the newest."""
    from mecha.store.postgres.store import open_postgres

    nodes = [open_postgres(pg_url), open_postgres(pg_url)]
    start = time.time()
    errors: list[BaseException] = []

    def stream(node: int) -> None:
        try:
            for n in range(15):
                keyed(nodes[node], f"{node}-{n}", at=start + n * 2 + node, supersede=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(node,)) for node in (0, 1)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        tasks = nodes[0].list_tasks(limit=100)
    finally:
        for node in nodes:
            node.close()
    [waiting] = [t for t in tasks if t.state is TaskState.PENDING]
    assert waiting.flow_at == max(t.flow_at for t in tasks) == start + 29
    assert sum(t.state is TaskState.SUPERSEDED for t in tasks) == 29
