"""`mecha task ls/show/retry/cancel` and `mecha event show`'s timeline, on a real SQLite
file that the test fills through the Store API (the CLI runs in-process through ``main``);
last, a retry handed over to a real `mecha serve` and worker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mecha.cli import main
from mecha.event import Delivery, Event, EventState
from mecha.store import EventOutcome, TaskUpdate, WorkerRecord
from mecha.store.sqlite.store import SqliteStore, open_sqlite
from mecha.task import NewTask, Task, TaskState
from mecha.testing.instant_worker import Behaviour, InstantWorker
from mecha.testing.serve_process import ServeProcess
from mecha.timeline import Step
from mecha.worker.kind import WorkerKind, WorkerState
from mecha.worker.matching import Decision, Outcome
from tests.e2e.serving import make_home, mecha_cli
from tests.integration.store.stores import arrive

RESULT = {
    "output": "Looks good.\nOne nit in main.py.",
    "comment": {"body": "LGTM with a nit", "target": "pr:7"},
    "labels": {"add": ["reviewed"], "remove": ["needs-review"]},
    "status": {"state": "success", "description": "review done", "context": "mecha/review"},
    "commit": {"message": "Fix the nit", "diff": "--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n"},
    "metadata": {"model": "instant", "input_tokens": 12, "exit_code": 0},
}


@dataclass
class Run:
    code: int
    out: str
    err: str


Mecha = Callable[..., Run]


@pytest.fixture
def mecha(home: Path, capsys: pytest.CaptureFixture[str]) -> Mecha:
    """Run ``mecha ARGS`` in-process; return exit code, stdout and stderr."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(list(args))
        captured = capsys.readouterr()
        code = done.value.code
        return Run(code if isinstance(code, int) else 1, captured.out, captured.err)

    return run


@pytest.fixture
def store(home: Path) -> Iterator[SqliteStore]:
    """The database the CLI uses (~/.mecha/mecha.db under the test's HOME)."""
    opened = open_sqlite(home / ".mecha" / "mecha.db")
    opened.add_workers(
        [
            WorkerRecord(name=name, kind=WorkerKind.UNMANAGED, definition={"worker": {}})
            for name in ("alpha", "beta")
        ]
    )
    opened.set_worker_state("alpha", WorkerState.ONLINE, endpoint="http://127.0.0.1:9")
    yield opened
    opened.close()


def api_task(store: SqliteStore, prompt: str = "Summarise #12", worker: str = "alpha") -> Task:
    [made] = store.create_tasks([NewTask(worker=worker, event_id="", prompt=prompt)])
    return made


def move(
    store: SqliteStore,
    task: Task,
    state: TaskState,
    *,
    step: str = "",
    detail: str = "",
    error: str | None = None,
    result: dict[str, Any] | None = None,
    start_attempt: bool = False,
) -> Task:
    """Drive ``task`` to ``state`` as the dispatcher would."""
    update = TaskUpdate(
        task_id=task.id, state=state, only_from=frozenset(TaskState), step=step, detail=detail,
        error=error, result=result, start_attempt=start_attempt,
    )  # fmt: skip
    [done] = store.update_tasks([update])
    assert done is not None
    return done


def failed_task(store: SqliteStore) -> Task:
    task = api_task(store)
    move(store, task, TaskState.RUNNING, start_attempt=True, step=Step.DISPATCHED)
    move(store, task, TaskState.RUNNING, start_attempt=True, step=Step.DISPATCHED)
    return move(
        store, task, TaskState.FAILED, error="worker answered 500: boom", step=Step.FAILED,
        detail="worker answered 500: boom",
    )  # fmt: skip


def matched_event(store: SqliteStore) -> tuple[Event, Task]:
    def decide(event: Event) -> EventOutcome:
        return EventOutcome(
            event_id=event.id, state=EventState.MATCHED,
            decisions=[Decision(worker="alpha", outcome=Outcome.MATCHED, rule=0, reason="rule 1")],
            tasks=[NewTask(worker="alpha", event_id=event.id, prompt="Review PR 7")],
        )  # fmt: skip

    delivery = Delivery(
        source="github", type="pull_request.opened", delivery_id="d-1", actor="mona",
        subject="octo/app", attrs={"number": 7}, raw=b"{}", headers={},
    )  # fmt: skip
    [event] = arrive(store, [delivery], decide)
    assert event is not None
    [task] = store.list_tasks(event_id=event.id)
    return event, task


# ------------------------------------------------------------------ ls


def test_ls_without_tasks_says_how_they_are_made(mecha: Mecha, store: SqliteStore) -> None:
    done = mecha("task", "ls")
    assert done.code == 0
    assert done.out == "no tasks yet (matched events make them, and POST /task on mecha serve)\n"


def test_ls_lists_tasks_newest_first_with_state_attempts_and_error(
    mecha: Mecha, store: SqliteStore
) -> None:
    failed = failed_task(store)
    event, from_event = matched_event(store)
    newest = api_task(store, worker="beta")
    done = mecha("task", "ls")
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert lines[0].split() == ["ID", "WORKER", "STATE", "ATTEMPTS", "EVENT", "AGE", "ERROR"]
    shown = [line.split()[0] for line in lines[1:]]
    assert shown == [t.id[:12] for t in (newest, from_event, failed)]
    assert lines[1].split()[1:5] == ["beta", "pending", "0", "-"]
    assert lines[2].split()[4] == event.id[:12]
    assert lines[3].split()[1:4] == ["alpha", "failed", "2"]
    assert lines[3].endswith("worker answered 500: boom")


def test_ls_filters_by_state_worker_and_event_prefix(mecha: Mecha, store: SqliteStore) -> None:
    failed = failed_task(store)
    event, from_event = matched_event(store)
    other = api_task(store, worker="beta")

    def ids(*args: str) -> list[str]:
        done = mecha("task", "ls", "--json", *args)
        assert done.code == 0, done.err
        return [t["id"] for t in json.loads(done.out)]

    assert ids("--state", "failed") == [failed.id]
    assert ids("--worker", "beta") == [other.id]
    assert ids("--event", event.id[:8]) == [from_event.id]
    assert ids("--limit", "1") == [other.id]
    assert mecha("task", "ls", "--state", "failed", "--worker", "beta").out == "no tasks match\n"


def test_ls_with_an_unknown_event_says_so(mecha: Mecha, store: SqliteStore) -> None:
    done = mecha("task", "ls", "--event", "feedfacecafe")
    assert done.code == 1
    assert "feedfacecafe" in done.err
    assert "Traceback" not in done.err


def test_ls_refuses_an_unknown_state(mecha: Mecha, store: SqliteStore) -> None:
    done = mecha("task", "ls", "--state", "done")
    assert done.code == 2
    assert "pending" in done.err


# ------------------------------------------------------------------ show


def test_show_prints_fields_prompt_result_and_the_timeline_in_order(
    mecha: Mecha, store: SqliteStore
) -> None:
    task = api_task(store, prompt="Review this\nplease")
    move(store, task, TaskState.RUNNING, start_attempt=True, step=Step.DISPATCHED)
    move(store, task, TaskState.COMPLETED, result=RESULT, step=Step.COMPLETED, detail="in 0.2s")
    done = mecha("task", "show", task.id[:7])
    assert done.code == 0, done.err
    out = done.out
    assert out.startswith(f"task {task.id}\n  worker:     alpha\n  state:      completed\n")
    assert "  event:      - (sent through the API)\n  attempts:   1\n" in out
    assert "prompt:\n  Review this\n  please\n" in out
    assert "  output:\n    Looks good.\n    One nit in main.py.\n" in out
    assert "  comment (target pr:7):\n    LGTM with a nit\n" in out
    assert "  labels:   +reviewed -needs-review\n" in out
    assert "  status:   success — review done (mecha/review)\n" in out
    assert "  commit:   Fix the nit\n            a diff of 5 lines\n" in out
    assert "  metadata: model=instant, input_tokens=12, exit_code=0\n" in out
    timeline = out.split("timeline:\n", 1)[1].splitlines()
    assert timeline[0].split() == ["TIME", "STEP", "WORKER", "TASK", "DETAIL"]
    assert [line.split()[1] for line in timeline[1:]] == ["created", "dispatched", "completed"]
    assert timeline[3].split()[2:] == ["alpha", task.id[:12], "in", "0.2s"]


def test_show_prints_the_error_of_a_failed_task(mecha: Mecha, store: SqliteStore) -> None:
    task = failed_task(store)
    out = mecha("task", "show", task.id).out
    assert "error:\n  worker answered 500: boom\n" in out
    assert "result: (none yet)" in out


def test_show_json_has_the_task_and_its_timeline(mecha: Mecha, store: SqliteStore) -> None:
    task = failed_task(store)
    shown = json.loads(mecha("task", "show", task.id, "--json").out)
    assert (shown["id"], shown["state"], shown["attempts"]) == (task.id, "failed", 2)
    steps = [s["step"] for s in shown["timeline"]]
    assert steps == ["created", "dispatched", "dispatched", "failed"]


@pytest.mark.parametrize("wanted", ["0123456789abcdef0123456789abcdef", "abc", "zzzzzzzz"])
def test_show_an_unknown_id_or_short_prefix_says_so(
    mecha: Mecha, store: SqliteStore, wanted: str
) -> None:
    api_task(store)
    done = mecha("task", "show", wanted)
    assert done.code == 1
    assert f'error: no task has the id "{wanted}"' in done.err
    assert "mecha task ls" in done.err


# ------------------------------------------------------------------ retry


def test_retry_sends_a_failed_task_again_with_attempts_reset(
    mecha: Mecha, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "alice")
    task = failed_task(store)
    done = mecha("task", "retry", task.id[:10])
    assert done.code == 0, done.err
    assert done.out == (
        f"task {task.id} is pending again, attempts reset\n"
        "a running mecha serve sends it within a second\n"
    )
    now = store.get_task(task.id)
    assert (now.state, now.attempts, now.error) == (TaskState.PENDING, 0, "")
    last = store.list_timeline(task_id=task.id)[-1]
    assert (last.step, last.detail) == (Step.REQUEUED, "by hand: alice (mecha task retry)")


def test_retry_a_cancelled_task_for_an_offline_worker_says_it_waits(
    mecha: Mecha, store: SqliteStore
) -> None:
    task = api_task(store, worker="beta")
    move(store, task, TaskState.CANCELLED, step=Step.CANCELLED)
    done = mecha("task", "retry", task.id)
    assert done.code == 0, done.err
    assert 'worker "beta" is offline: the task waits until mecha worker start beta' in done.out
    assert store.get_task(task.id).state is TaskState.PENDING


@pytest.mark.parametrize(
    ("state", "hint"),
    [
        (TaskState.PENDING, "it waits to be sent"),
        (TaskState.RUNNING, "mecha task cancel"),
        (TaskState.COMPLETED, "send it as a new task"),
    ],
)
def test_retry_refuses_a_task_that_is_not_failed_or_cancelled(
    mecha: Mecha, store: SqliteStore, state: TaskState, hint: str
) -> None:
    task = api_task(store)
    if state is not TaskState.PENDING:
        move(store, task, state)
    done = mecha("task", "retry", task.id)
    assert done.code == 1
    assert (
        f"error: task {task.id} is {state.value}; only failed or cancelled tasks can be retried"
        in done.err
    )
    assert hint in done.err
    assert store.get_task(task.id).state is state
    assert store.list_timeline(task_id=task.id)[-1].step != Step.REQUEUED


# ------------------------------------------------------------------ cancel


def test_cancel_a_pending_task(
    mecha: Mecha, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "bob")
    task = api_task(store)
    done = mecha("task", "cancel", task.id)
    assert (done.code, done.out) == (0, f"cancelled task {task.id} (it was pending)\n")
    assert store.get_task(task.id).state is TaskState.CANCELLED
    last = store.list_timeline(task_id=task.id)[-1]
    assert (last.step, last.detail) == (Step.CANCELLED, "by hand: bob (mecha task cancel)")


def test_cancel_a_running_task_says_the_answer_is_not_recorded(
    mecha: Mecha, store: SqliteStore
) -> None:
    task = api_task(store)
    move(store, task, TaskState.RUNNING, start_attempt=True)
    done = mecha("task", "cancel", task.id)
    assert done.code == 0, done.err
    assert "abandons the send under way within a second" in done.out
    assert store.get_task(task.id).state is TaskState.CANCELLED


@pytest.mark.parametrize(
    ("state", "hint"),
    [
        (TaskState.COMPLETED, "nothing left to cancel"),
        (TaskState.FAILED, "mecha task retry"),
        (TaskState.CANCELLED, "mecha task retry"),
    ],
)
def test_cancel_refuses_a_final_task(
    mecha: Mecha, store: SqliteStore, state: TaskState, hint: str
) -> None:
    task = move(store, api_task(store), state)
    done = mecha("task", "cancel", task.id)
    assert done.code == 1
    assert f"error: task {task.id} is already {state.value}" in done.err
    assert hint in done.err


def test_cancel_an_unknown_task_says_so(mecha: Mecha, store: SqliteStore) -> None:
    done = mecha("task", "cancel", "abcdef")
    assert done.code == 1
    assert 'no task has the id "abcdef"' in done.err


# ------------------------------------------------------------------ write retry, replay


def test_write_retry_by_key_reopens_that_write_and_says_who(
    mecha: Mecha, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mecha.policy.writes import Place, Write, WriteState
    from mecha.store import WritePlan, WriteUpdate

    monkeypatch.setenv("USER", "carol")
    event, task = matched_event(store)
    place = Place(forge="github", repo="octo/app", number=7)
    writes = [Write(key=k, worker="alpha", action="comment", place=place, body=k)
              for k in ("k-one", "k-two")]  # fmt: skip
    store.plan_writes([WritePlan(task_id=task.id, event_id=event.id, writes=writes)])
    planned = frozenset({WriteState.PLANNED})
    store.update_writes([WriteUpdate(key=w.key, state=WriteState.DEAD, only_from=planned)
                         for w in writes])  # fmt: skip
    unknown = mecha("write", "retry", event.id, "--key", "nope")
    done = mecha("write", "retry", event.id, "--key", "k-two")
    assert unknown.code == 1 and "no write with key 'nope'" in unknown.err
    assert "hint: its writes and their keys" in unknown.err
    assert done.code == 0, done.err
    assert f"1 writes of event {event.id} will be tried again" in done.out
    states = {w.key: w.state for w in store.list_writes(event_id=event.id)}
    assert states == {"k-one": WriteState.DEAD, "k-two": WriteState.PLANNED}
    [retried] = [
        e.detail for e in store.list_timeline(event_id=event.id) if e.step == "write retry"
    ]
    assert retried == "comment: tried again by hand: carol (mecha write retry)"


def test_event_replay_without_a_server_says_to_start_one(
    mecha: Mecha, store: SqliteStore, home: Path
) -> None:
    event, _ = matched_event(store)
    config = home / ".mecha" / "config.yml"
    config.write_text("addr: 127.0.0.1:9\n", encoding="utf-8")
    done = mecha("event", "replay", event.id[:8])
    unknown = mecha("event", "replay", "abcdef")
    assert done.code == 1
    assert "no mecha server answered at http://127.0.0.1:9/event/" in done.err
    assert "replayed by the running mecha serve" in done.err
    assert unknown.code == 1 and 'no event has the id "abcdef"' in unknown.err
    assert len(store.list_events(limit=10)) == 1


# ------------------------------------------------------------------ event show


def test_event_show_prints_the_timeline_of_the_event_and_its_tasks(
    mecha: Mecha, store: SqliteStore
) -> None:
    event, task = matched_event(store)
    move(store, task, TaskState.RUNNING, start_attempt=True, step=Step.DISPATCHED)
    done = mecha("event", "show", event.id[:8])
    assert done.code == 0, done.err
    timeline = done.out.split("\ntimeline:\n", 1)[1].splitlines()
    assert [line.split()[1] for line in timeline[1:]] == ["received", "matched", "dispatched"]
    assert timeline[2].split()[2:5] == ["-", "-", "taken"]
    assert timeline[3].split()[2:4] == ["alpha", task.id[:12]]


def test_event_show_json_includes_the_timeline(mecha: Mecha, store: SqliteStore) -> None:
    event, task = matched_event(store)
    shown = json.loads(mecha("event", "show", event.id, "--json").out)
    assert [s["step"] for s in shown["timeline"]] == ["received", "matched"]
    assert shown["timeline"][1]["detail"] == "taken by alpha"
    assert shown["tasks"][0]["id"] == task.id


# ------------------------------------------------------------------ with a running server


def test_a_running_server_sends_a_retried_task_again(home: Path, tmp_path: Path) -> None:
    """`mecha task retry` in one process; the serve in another sends the task again."""
    mecha_home = make_home(tmp_path)
    with InstantWorker() as worker:
        (mecha_home / "alpha.yml").write_text(f"name: alpha\nendpoint: {worker.url}\n")
        assert mecha_cli(mecha_home, "worker", "add", str(mecha_home / "alpha.yml")).returncode == 0
        assert mecha_cli(mecha_home, "worker", "start", "alpha").returncode == 0
        worker.script([Behaviour(status=500)])
        with ServeProcess(mecha_home) as serve:
            sent = httpx.post(f"{serve.url}/task", json={"prompt": "once more", "worker": "alpha"})
            task_id = sent.json()["id"]
            failed = wait_for_state(serve.url, task_id, "failed")
            assert failed["error"].startswith("worker answered 500")
            retried = mecha_cli(mecha_home, "task", "retry", task_id)
            assert retried.returncode == 0, retried.stderr
            assert "a running mecha serve sends it within a second" in retried.stdout
            done = wait_for_state(serve.url, task_id, "completed")
    assert [r.id for r in worker.requests] == [task_id, task_id]
    assert done["attempts"] == 1
    steps = [step["step"] for step in done["timeline"]]
    assert steps == ["created", "dispatched", "failed", "requeued", "dispatched", "completed"]


def wait_for_state(url: str, task_id: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown: dict[str, Any] = httpx.get(f"{url}/task/{task_id}").json()
        if shown["state"] == state or time.monotonic() > deadline:
            assert shown["state"] == state, shown
            return shown
        time.sleep(0.05)
