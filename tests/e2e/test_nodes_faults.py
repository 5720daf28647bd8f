"""Several `mecha serve` nodes on one PostgreSQL, with faults: nothing lost, nothing doubled.

* 50 copies of one delivery spread over three nodes make one event;
* three nodes, one SIGKILLed mid-stream and restarted, another stopped with SIGTERM:
  every acknowledged event ends with exactly one completed task per matching worker, the
  forge gets one comment per (event, worker), and a ``concurrency: 1`` worker never has
  two tasks at once;
* the write-back ledger across nodes: a write one node is calling is left alone by the
  others while that node lives, and a dead caller's write is finished once, by another
  node, which looks on the forge first.

Real processes, a real PostgreSQL (``pg_url``), the GitHub emulator, instant workers.
Every wait has a generous deadline; nothing here measures speed.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from mecha.event import Event
from mecha.policy.writes import marked_worker
from mecha.store import WriteRecord
from mecha.store.postgres.store import PostgresStore, open_postgres
from mecha.task import Task
from mecha.testing.forge.api import ForgeEmulator, Recorded
from mecha.testing.instant_worker import InstantWorker, Received
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST
from tests.e2e.nodes import DEADLINE, LEASE, add_worker, deliver, node_env, node_home, wait
from tests.e2e.serving import post_github, pr_payload
from tests.e2e.writing import BASE, FAST_WRITES, GITHUB_TOKEN, HEAD, writes_settled

COMMENTS = "/github/repos/octo/app/issues/{}/comments"
POLICY = "policy:\n  comment: {allow: true}\n"


@contextmanager
def database(pg_url: str) -> Iterator[PostgresStore]:
    store = open_postgres(pg_url)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def stopped_at_the_end(nodes: list[ServeProcess]) -> Iterator[None]:
    """Stop every node of ``nodes`` (as it is then) at the end; show their logs on an error."""
    try:
        yield
    except BaseException:
        for node in nodes:
            sys.stderr.write(f"--- node {node.pid}'s log ---\n{node.log()[-5000:]}")
        raise
    finally:
        for node in nodes:
            node.stop()


def comment_posts(forge: ForgeEmulator, number: int | None = None) -> list[Recorded]:
    """The comment-creating requests the forge received (of one pull request, or all)."""
    return [
        r for r in forge.requests
        if r.method == "POST" and r.path.endswith("/comments") and "/issues/" in r.path
        and (number is None or r.path == COMMENTS.format(number))
    ]  # fmt: skip


def final_tasks(store: PostgresStore, event_id: str) -> list[Task]:
    """The event's tasks once there are some and all are final; [] before."""
    tasks = store.list_tasks(event_id=event_id)
    return tasks if tasks and all(t.final for t in tasks) else []


# ---------------------------------------------------------------- one delivery, 50 copies


def test_fifty_copies_of_one_delivery_over_three_nodes_make_one_event(
    tmp_path: Path, pg_url: str
) -> None:
    env = node_env(pg_url)
    homes = [node_home(tmp_path, f"node-{i}", config=FAST) for i in range(3)]
    body = pr_payload(number=51)
    delivery = str(uuid.uuid4())
    start = threading.Barrier(50)

    def post(index: int) -> httpx.Response:
        start.wait(DEADLINE)  # all 50 leave together
        return post_github(nodes[index % 3].url, body, delivery=delivery)

    with database(pg_url) as store, InstantWorker() as worker, ExitStack() as stack:
        for name in ("first", "second"):
            add_worker(homes[0], env, store, name, worker.url)
        nodes = [stack.enter_context(ServeProcess(home, env=env)) for home in homes]
        with ThreadPoolExecutor(max_workers=50) as pool:
            replies = list(pool.map(post, range(50)))
        [event] = store.list_events(limit=1000)
        tasks = wait(lambda: final_tasks(store, event.id), "the event's tasks end")
        sent = worker.received
    codes = sorted(r.status_code for r in replies)
    assert codes == [200] * 49 + [202], codes
    assert {r.json()["status"] for r in replies if r.status_code == 200} == {"duplicate"}
    [stored] = [r.json() for r in replies if r.status_code == 202]
    assert event.delivery_id == delivery and stored["id"] == event.id
    assert sorted((t.worker, t.state.value) for t in tasks) == [
        ("first", "completed"), ("second", "completed"),
    ]  # fmt: skip
    assert sent == 2  # one send per task, from whichever node claimed it


# ---------------------------------------------------------------- a kill and a stop


#: deliveries sent in the stream; the stream waits for a fault before these (so each
#: fault lands in its middle, and deliveries follow it)
EVENTS = 60
KILL_AT = 15
STOP_AT = 40
#: seconds the concurrency-1 worker takes per task (under the lease: a task a killed node
#: left at the worker is answered before its lease ends and the task is sent again)
SERIAL_DELAY = 0.2


class Stream(threading.Thread):
    """Sends EVENTS signed deliveries (distinct ids, pull requests 1…EVENTS) round-robin
    over ``nodes``, each to the next node until one acknowledges it. Before delivery
    number ``n`` of ``faults`` it waits until that fault has happened."""

    def __init__(self, nodes: list[ServeProcess], faults: dict[int, threading.Event]) -> None:
        super().__init__(name="deliveries", daemon=True)
        self.nodes = nodes
        self.faults = faults
        #: delivery id → pull request number, for every acknowledged delivery
        self.acked: dict[str, int] = {}
        #: tries a dead or stopping node refused
        self.refused = 0
        #: deliveries acknowledged as a duplicate (stored by a node that died answering)
        self.duplicates = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            for number in range(1, EVENTS + 1):
                if number in self.faults:
                    assert self.faults[number].wait(DEADLINE), f"no fault before {number}"
                delivery = f"stream-{number}-{uuid.uuid4().hex[:8]}"
                _, answer, refused = deliver(
                    self.nodes, number, pr_payload(number=number), delivery
                )
                self.refused += refused
                self.duplicates += answer.status_code == 200
                self.acked[delivery] = number
                time.sleep(0.05)  # a stream, not a burst: the faults land in its middle
        except BaseException as exc:  # reported by the test
            self.failure = exc


def kill_and_stop(
    stream: Stream, every: list[ServeProcess], homes: list[Path], env: dict[str, str],
    pg_url: str,
) -> tuple[int, float, int]:  # fmt: skip
    """The faults, mid-stream: SIGKILL the node sending the concurrency-1 worker's task
    and restart it; later SIGTERM another. (Its exit status, when, the other's status.)"""
    nodes = stream.nodes
    wait(lambda: len(stream.acked) >= KILL_AT - 1 or stream.failure, "deliveries acked")
    # its task comes back (to be sent again) only once the dead node's lease has run out
    victim = wait(lambda: serial_sender(pg_url, nodes), "a node sends a serial task") - 1
    killed = nodes[victim].kill()
    killed_at = time.time()
    stream.faults[KILL_AT].set()  # deliveries go on while it is down, then restarted
    nodes[victim] = ServeProcess(homes[victim], env=env)  # on the same home
    every.append(nodes[victim])
    wait(lambda: len(stream.acked) >= STOP_AT - 1 or stream.failure, "deliveries acked")
    stream.faults[STOP_AT].set()  # deliveries go on while it drains, and after
    stopped = nodes[(victim + 1) % len(nodes)].stop()
    return killed, killed_at, stopped


def serial_sender(pg_url: str, nodes: list[ServeProcess]) -> int:
    """1 + the index in ``nodes`` of a node running a task of worker "serial"; 0 if none."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT n.pid FROM tasks AS t JOIN nodes AS n ON n.id = t.node_id "
            "WHERE t.worker = 'serial' AND t.state = 'running'"
        ).fetchall()
    pids = [node.pid for node in nodes]
    return next((pids.index(pid) + 1 for (pid,) in rows if pid in pids), 0)


def settled(store: PostgresStore, events: int, workers: int) -> bool:
    """Every event stored, each with its tasks final, and no write open."""
    stored = store.list_events(limit=10_000)
    tasks = store.list_tasks(limit=10_000)
    open_writes = store.due_writes(now=time.time() + 10**6, limit=10_000)
    return (
        len(stored) >= events
        and len(tasks) >= events * workers
        and all(t.final for t in tasks)
        and not open_writes
    )


def test_three_nodes_survive_a_kill_and_a_stop(tmp_path: Path, pg_url: str) -> None:
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge:
        for number in range(1, EVENTS + 1):
            forge.add_pull("octo", "app", number, base_sha=BASE, head_sha=HEAD)
        env = node_env(pg_url, github_url=forge.github_url)
        homes = [
            node_home(tmp_path, f"node-{i}", config=FAST_WRITES, github_token=GITHUB_TOKEN)
            for i in range(3)
        ]
        with (
            database(pg_url) as store,
            InstantWorker() as serial,
            InstantWorker() as wide,
            ExitStack() as stack,
        ):
            serial.set(delay=SERIAL_DELAY, result={"comment": {"body": "serial says hi"}})
            wide.set(delay=0.05, result={"comment": {"body": "wide says hi"}})
            for name, url, concurrency in (("serial", serial.url, 1), ("wide", wide.url, 4)):
                # no rate limit (the default is 2 a second): only the concurrency paces
                extra = f"concurrency: {concurrency}\nrate_limit: {{per_second: 0}}\n{POLICY}"
                add_worker(homes[0], env, store, name, url, extra=extra)
            every: list[ServeProcess] = []  # every node started, the restarted one too
            stack.enter_context(stopped_at_the_end(every))
            every += [ServeProcess(home, env=env) for home in homes]
            nodes = list(every)  # the three serving now
            stream = Stream(nodes, {KILL_AT: threading.Event(), STOP_AT: threading.Event()})
            stream.start()
            killed, killed_at, stopped = kill_and_stop(stream, every, homes, env, pg_url)
            stream.join(DEADLINE)
            assert not stream.is_alive() and stream.failure is None, stream.failure
            acked = dict(stream.acked)
            wait(lambda: settled(store, len(acked), 2), "every event's tasks and writes end")

            events = store.list_events(limit=10_000)
            tasks = store.list_tasks(limit=10_000)
            writes = [w for event in events for w in store.list_writes(event_id=event.id)]
            posts = comment_posts(forge)
            with forge.lock:
                made = {n: forge.github.writes.comments("octo", "app", n) for n in acked.values()}
            on_forge = {n: [marked_worker(c.body) for c in found] for n, found in made.items()}
            requeued = [
                entry for event in events for entry in store.list_timeline(event_id=event.id)
                if entry.step == "requeued"
            ]  # fmt: skip
    print(
        f"refused tries: {stream.refused}, duplicates acked: {stream.duplicates}, "
        f"tasks requeued: {len(requeued)}, serial max in flight: {serial.max_in_flight}, "
        f"sends: serial {serial.received}, wide {wide.received}"
    )
    assert killed == -9 and stopped == 0
    assert len(acked) == EVENTS  # every delivery was acknowledged by some node
    found = problems(
        acked, events=events, tasks=tasks, writes=writes, posts=posts, on_forge=on_forge
    )
    # a concurrency-1 worker never has two tasks in flight, whichever nodes sent them
    if serial.max_in_flight != 1:
        pairs = overlaps(serial.requests, killed_at)
        found.append(
            f"the concurrency-1 worker had {serial.max_in_flight} tasks at once; "
            f"{len(pairs)} pairs overlapped, e.g. {pairs[:3]}"
        )
    assert not found, "\n".join(found)


def problems(
    acked: dict[str, int], *, events: list[Event], tasks: list[Task], writes: list[WriteRecord],
    posts: list[Recorded], on_forge: dict[int, list[str]],
) -> list[str]:  # fmt: skip
    """What breaks "nothing lost, nothing doubled", all of it (one line each)."""
    found: list[str] = []
    # every acknowledged delivery is one event, and there are no others
    by_delivery = Counter(e.delivery_id for e in events)
    if set(by_delivery) != set(acked) or set(by_delivery.values()) != {1}:
        return [f"events by delivery id: {by_delivery}, acknowledged: {sorted(acked)}"]
    number_of = {e.id: acked[e.delivery_id] for e in events}
    pairs = [(n, w) for n in sorted(acked.values()) for w in ("serial", "wide")]
    # exactly one completed task per (event, matching worker)
    per_task = Counter((number_of[t.event_id], t.worker, t.state.value) for t in tasks)
    found += _differ("tasks (pull request, worker, state)", per_task,
                     {(n, w, "completed"): 1 for n, w in pairs})  # fmt: skip
    # one comment write per (event, worker) in the ledger, done
    per_write = Counter((number_of[w.event_id], w.write.worker, w.state.value) for w in writes)
    found += _differ("writes (pull request, worker, state)", per_write,
                     {(n, w, "done"): 1 for n, w in pairs})  # fmt: skip
    # the forge: one comment-creating POST per (event, worker), no duplicate
    per_post = Counter((int(r.path.split("/")[-2]), marked_worker(_body(r))) for r in posts)
    found += _differ("comment POSTs (pull request, worker)", per_post, dict.fromkeys(pairs, 1))
    per_comment = Counter((n, w) for n, workers in on_forge.items() for w in workers)
    found += _differ("comments on the forge (pull request, worker)", per_comment,
                     dict.fromkeys(pairs, 1))  # fmt: skip
    return found


def overlaps(requests: list[Received], killed_at: float) -> list[str]:
    """Each pair of tasks the worker had at once: their ids and times (s after the kill)."""
    sent = Counter(r.id for r in requests)
    found = []
    for one, two in itertools.combinations(requests, 2):
        if two.received_at < (one.finished_at or float("inf")) and one.received_at < (
            two.finished_at or float("inf")
        ):
            found.append(
                " & ".join(
                    f"{r.id} ({r.received_at - killed_at:+.3f}…"
                    f"{(r.finished_at or 0) - killed_at:+.3f}, sent {sent[r.id]}x)"
                    for r in (one, two)
                )
            )
    return found


def _differ(what: str, got: Counter[Any], wanted: dict[Any, int]) -> list[str]:
    """One line naming what ``got`` has other than ``wanted`` (counts), none if alike."""
    wrong = {k: v for k, v in got.items() if wanted.get(k) != v}
    missing = [k for k in wanted if k not in got]
    if not wrong and not missing:
        return []
    return [f"{what}: {len(wrong)} counted wrong {dict(sorted(wrong.items()))}, "
            f"{len(missing)} missing {missing}"]  # fmt: skip


def _body(request: Recorded) -> str:
    data: dict[str, Any] = json.loads(request.body)
    return str(data["body"])


# ---------------------------------------------------------------- the write-back ledger


def test_a_write_being_called_is_not_taken_by_another_node_and_a_dead_callers_write_is_finished_once(  # noqa: E501
    tmp_path: Path, pg_url: str
) -> None:
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge:
        forge.add_pull("octo", "app", 7, base_sha=BASE, head_sha=HEAD)
        # GitHub makes the comment at once and answers node A only when released: node A
        # is alive but stuck between the forge's write and its own record of it
        release = forge.hold(COMMENTS.format(7) + "$", method="POST")
        env_a, env_b = (node_env(pg_url, github_url=forge.github_url_for(n)) for n in "ab")
        home_a, home_b = (
            node_home(tmp_path, n, config=FAST_WRITES, github_token=GITHUB_TOKEN) for n in "ab"
        )
        with database(pg_url) as store, InstantWorker() as worker:
            worker.set(result={"comment": {"body": "only once, please"}})
            # not sticky: the write looks for its own marker first only when uncertain
            extra = "policy:\n  comment: {allow: true, sticky: false}\n"
            add_worker(home_a, env_a, store, "reviewer", worker.url, extra=extra)
            node_a = ServeProcess(home_a, env=env_a)
            try:
                event_id, a_id = calling_on_a(node_a, store, forge)
                with ServeProcess(home_b, env=env_b) as node_b:
                    left_alone_by_b(store, forge, node_b, a_id, event_id)
                    node_a.kill()  # between the forge's write and node A's ledger update
                    killed_at = time.time()
                    release.set()
                    shown = writes_settled(node_b.url, event_id, timeout=DEADLINE)
                    [write] = store.list_writes(event_id=event_id)
                    timeline = store.list_timeline(event_id=event_id)
                    logs = node_a.log() + node_b.log()
            finally:
                node_a.kill()
                release.set()
        by_b = [(r.method, r.path) for r in forge.requests if r.caller == "b"]
        posts = comment_posts(forge, 7)
        with forge.lock:
            made = forge.github.writes.comments("octo", "app", 7)
    assert [r.caller for r in posts] == ["a"], [(r.caller, r.path) for r in posts]
    assert [c.body.split("\n\n<!-- mecha:")[0] for c in made] == ["only once, please"]
    # node B looked on the forge (the write was uncertain), found it, and posted nothing
    assert ("GET", COMMENTS.format(7)) in by_b and ("POST", COMMENTS.format(7)) not in by_b, by_b
    assert [w["state"] for w in shown["writes"]] == ["done"]
    assert write.state.value == "done" and write.attempts == 2, write
    assert write.remote_id == str(made[0].id) and write.updated_at > killed_at
    written = [e.detail for e in timeline if e.step == "written"]
    assert len(written) == 1 and "already there" in written[0], (written, logs[-3000:])


def calling_on_a(
    node_a: ServeProcess, store: PostgresStore, forge: ForgeEmulator
) -> tuple[str, str]:
    """Send node A (alone so far) the event; once its comment POST is held: (event, node id)."""
    answer = post_github(node_a.url, pr_payload(number=7))
    assert answer.status_code == 202, answer.text
    event_id = str(answer.json()["id"])
    wait(lambda: comment_posts(forge, 7), "node A posts the comment")
    [write] = store.list_writes(event_id=event_id)
    assert write.state.value == "calling"
    return event_id, wait(lambda: _node_id(store, node_a.pid), "node A is listed")


def left_alone_by_b(
    store: PostgresStore, forge: ForgeEmulator, node_b: ServeProcess, a_id: str, event_id: str
) -> None:
    """While node A (alive, heartbeating) stays in the call for four leases, node B (polling
    the ledger every 100 ms) neither calls the forge for that write nor looks for it; the
    ledger names node A and a lease it keeps renewing."""
    b_started = time.time()
    b_id = wait(lambda: _node_id(store, node_b.pid), "node B is listed")
    wait(
        lambda: min(_heartbeat(store, a_id), _heartbeat(store, b_id)) > b_started + 4 * LEASE,
        "both nodes heartbeat for four leases",
    )
    by_b = [(r.method, r.path) for r in forge.requests if r.caller == "b"]
    touched = [(method, path) for method, path in by_b if "/issues/7/comments" in path]
    assert not touched, f"node B called the forge for a write node A is calling: {by_b}"
    [write] = store.list_writes(event_id=event_id)
    assert write.state.value == "calling" and write.attempts == 1, write
    assert write.node == a_id and write.lease_until > b_started + 3 * LEASE, (write, a_id)


def _node_id(store: PostgresStore, pid: int) -> str:
    return next((n.id for n in store.list_nodes() if n.pid == pid), "")


def _heartbeat(store: PostgresStore, node_id: str) -> float:
    return next((n.heartbeat_at for n in store.list_nodes() if n.id == node_id), 0.0)
