"""PostgreSQL's wake-ups between nodes: what ``mecha_tasks`` notifications carry, and which
ones a node's ``Listener`` passes on (another node's changes, not its own)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from mecha.store import TaskUpdate
from mecha.store.postgres.listen import Listener
from mecha.store.postgres.store import PostgresStore, open_postgres
from mecha.store.postgres.tasks import CHANNEL
from mecha.task import NewTask, TaskState

PENDING = frozenset({TaskState.PENDING})
RUNNING = frozenset({TaskState.RUNNING})


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    opened = open_postgres(pg_url)
    try:
        yield opened
    finally:
        opened.close()


def payloads(pg_url: str, act: object) -> list[str]:
    """The payloads of the notifications ``act()`` causes, in commit order."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        act()  # type: ignore[operator]
        conn.execute(f"NOTIFY {CHANNEL}, 'end'")  # after every notification act caused
        heard: list[str] = []
        deadline = time.monotonic() + 60
        while "end" not in heard:
            assert time.monotonic() < deadline, heard
            heard += [n.payload for n in conn.notifies(timeout=1.0)]
        return heard[: heard.index("end")]


def test_a_nodes_own_completion_names_it_and_a_made_task_names_none(
    store: PostgresStore, pg_url: str
) -> None:
    made: list[str] = []

    def make() -> None:
        made.extend(
            t.id for t in store.create_tasks([NewTask(worker="w", event_id="", prompt="p")])
        )

    assert payloads(pg_url, make) == [""]  # every node looks, the maker included
    [task_id] = made
    claim = TaskUpdate(task_id=task_id, state=TaskState.RUNNING, only_from=PENDING,
                       start_attempt=True, node="node-a", lease=30)  # fmt: skip
    # a claim leaves the task running: no other node has anything new to look at
    assert payloads(pg_url, lambda: store.update_tasks([claim])) == []
    done = TaskUpdate(task_id=task_id, state=TaskState.COMPLETED, only_from=RUNNING,
                      result={"ok": True}, node="node-a")  # fmt: skip
    assert payloads(pg_url, lambda: store.update_tasks([done])) == ["node-a"]


def test_a_listener_passes_on_other_nodes_notifications_not_its_own(
    store: PostgresStore, pg_url: str
) -> None:
    calls = threading.Semaphore(0)
    listener = Listener(store.server, calls.release, node="node-a")
    listener.start()
    try:
        assert listener.listening.wait(60)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for payload in ("node-a", "node-b", "node-a", ""):
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        assert calls.acquire(timeout=60) and calls.acquire(timeout=60)
    finally:
        listener.close()  # joins its thread: what it had read is counted
    assert listener.count == 2  # node B's and the unnamed one; node A's own were not
