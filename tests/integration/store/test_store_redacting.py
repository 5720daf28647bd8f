"""RedactingStore over a real SQLite file: every text from outside is redacted on its way in.

Each write path gets a known secret value (no token shape: only knowing it masks it) in
each of its text fields; afterwards the raw bytes of the database and its WAL hold none,
and what is read back says ``[REDACTED]`` where the secret was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mecha.event import EventState
from mecha.known_secrets import KnownSecrets
from mecha.policy.writes import Place, Write, WriteState, ledger_key
from mecha.redaction import REDACTED, RedactingFilter
from mecha.secrets import Secrets
from mecha.store import EventOutcome, TaskUpdate, WorkerRecord, WritePlan, WriteUpdate
from mecha.store.redacting import RedactingStore
from mecha.store.sqlite.store import open_sqlite
from mecha.task import NewTask, TaskState
from mecha.timeline import Step, TimelineEntry
from mecha.worker.held_secrets import worker_secret_values
from mecha.worker.kind import WorkerKind, WorkerState
from mecha.worker.matching import Decision, Outcome
from mecha.worker.parser import parse_worker
from mecha.yaml_doc import load_yaml
from tests.integration.store.stores import arrive, delivery

SECRET = "PlainSecretValue8c1d2e3f"
PLACE = Place(forge="github", repo="octo/hello", number=7, head_sha="abc123")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedactingStore]:
    opened = RedactingStore(open_sqlite(tmp_path / "mecha.db"), KnownSecrets([SECRET]))
    yield opened
    opened.close()


def quoted(what: str) -> str:
    return f"{what} said: key {SECRET} refused"


def stored_bytes(tmp_path: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(tmp_path.glob("mecha.db*")))


def test_every_write_path_redacts_what_it_stores(store: RedactingStore, tmp_path: Path) -> None:
    worker = WorkerRecord(name="w", kind=WorkerKind.UNMANAGED, error=quoted("add"))
    store.add_workers([worker])
    store.set_worker_state("w", WorkerState.ERROR, error=quoted("health"))
    made: list = []  # type: ignore[type-arg]

    def decide(event):  # type: ignore[no-untyped-def]
        return EventOutcome(
            event_id=event.id, state=EventState.MATCHED, error=quoted("hydration"),
            decisions=[Decision(worker="w", outcome=Outcome.MATCHED, rule=0,
                                reason=quoted("rule"))],
            tasks=[NewTask(worker="w", event_id=event.id, prompt="p")],
        )  # fmt: skip

    [event] = arrive(store, [delivery()], decide, made)
    assert event is not None
    [task] = made
    key = ledger_key(event_id=event.id, worker="w", action="comment", target=PLACE.name,
                     head_sha=PLACE.head_sha)  # fmt: skip
    write = Write(key=key, worker="w", action="comment", place=PLACE, body=quoted("comment"),
                  description=quoted("status"), diff=quoted("diff"))  # fmt: skip
    note = TimelineEntry(at=time.time(), step=Step.POLICY, event_id=event.id,
                         task_id=task.id, worker="w", detail=quoted("policy"))  # fmt: skip
    plan = WritePlan(task_id=task.id, event_id=event.id, writes=[write],
                     details={key: quoted("preview")}, notes=[note])  # fmt: skip
    store.update_tasks([
        TaskUpdate(task_id=task.id, state=TaskState.FAILED,
                   only_from=frozenset({TaskState.PENDING}), error=quoted("upstream"),
                   result={"output": quoted("output"), "metadata": {SECRET: [quoted("meta")]}},
                   step=Step.FAILED, detail=quoted("step"), plan=plan),
    ])  # fmt: skip
    store.add_timeline([note])
    store.update_writes([WriteUpdate(key=key, state=WriteState.FAILED,
                                     only_from=frozenset({WriteState.PLANNED}),
                                     detail=quoted("forge"), step=Step.FAILED)])  # fmt: skip

    assert SECRET.encode() not in stored_bytes(tmp_path)
    shown = store.get_task(task.id)
    assert shown.error == f"upstream said: key {REDACTED} refused"
    assert shown.result == {
        "output": f"output said: key {REDACTED} refused",
        "metadata": {REDACTED: [f"meta said: key {REDACTED} refused"]},
    }
    assert store.get_worker("w").error == f"health said: key {REDACTED} refused"
    [match] = store.list_matches(event.id)
    assert match.reason == f"rule said: key {REDACTED} refused"
    [record] = store.list_writes(event_id=event.id)
    assert record.write.body == f"comment said: key {REDACTED} refused"
    assert record.detail == f"forge said: key {REDACTED} refused"
    details = [entry.detail for entry in store.list_timeline(event_id=event.id)]
    assert details and all(SECRET not in d for d in details)
    assert f"step said: key {REDACTED} refused" in details


def test_values_learned_later_are_masked_from_then_on(tmp_path: Path) -> None:
    known = KnownSecrets()
    store = RedactingStore(open_sqlite(tmp_path / "mecha.db"), known)
    try:
        store.add_workers([WorkerRecord(name="w", kind=WorkerKind.UNMANAGED)])
        known.add([SECRET])
        store.set_worker_state("w", WorkerState.ERROR, error=quoted("health"))
    finally:
        store.close()
    assert SECRET.encode() not in stored_bytes(tmp_path)


def test_known_secrets_keep_attached_log_filters_current() -> None:
    known = KnownSecrets(["first-secret-value"])
    log_filter = RedactingFilter()
    known.attach(log_filter)
    known.add(["second-secret-value", ""])
    text = "first-secret-value and second-secret-value"
    assert log_filter.redactor.redact(text) == f"{REDACTED} and {REDACTED}"
    assert known.redact(text) == f"{REDACTED} and {REDACTED}"


def test_a_workers_keys_are_its_secret_values() -> None:
    text = (
        "name: w\nadapter:\n  type: openai\n  upstream: http://127.0.0.1:9\n  model: m\n"
        "  api_key: ${MODEL_KEY}\n  token: openai.default\n"
        "events:\n  - source: github\n    on: pull_request.opened\n    prompt: hi\n"
    )
    spec = parse_worker(load_yaml(text, file="w.yml"), environ={"MODEL_KEY": "from-env-1234"}).spec
    secrets = Secrets(tokens={"openai": {"default": "from-secrets-5678"}})
    assert worker_secret_values(spec) == {"from-env-1234"}
    assert worker_secret_values(spec, secrets) == {"from-env-1234", "from-secrets-5678"}
    assert worker_secret_values(spec, Secrets.empty()) == {"from-env-1234"}
