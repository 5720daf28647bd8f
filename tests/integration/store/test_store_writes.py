"""The write-back ledger, on every store: planning once, guarded updates, due writes."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from mecha.policy.writes import Place, Write, WriteState, ledger_key
from mecha.store import WritePlan, WriteUpdate
from mecha.store.sqlite.store import SqliteStore
from mecha.timeline import Step, TimelineEntry
from tests.integration.store.stores import AnyStore, sqlite_only

PLACE = Place(forge="github", repo="octo/hello", number=7, head_sha="abc123")
OPEN = frozenset({WriteState.PLANNED, WriteState.CALLING})
CALLING = frozenset({WriteState.CALLING})


def comment(body: str = "hello", *, event: str = "ev1") -> Write:
    key = ledger_key(event_id=event, worker="w", action="comment", target=PLACE.name,
                     head_sha=PLACE.head_sha)  # fmt: skip
    return Write(key=key, worker="w", action="comment", place=PLACE, body=body)


def note(detail: str) -> TimelineEntry:
    return TimelineEntry(at=time.time(), step=Step.POLICY, event_id="ev1", task_id="t1",
                         worker="w", detail=detail)  # fmt: skip


def plan(*writes: Write, notes: tuple[TimelineEntry, ...] = ()) -> WritePlan:
    return WritePlan(task_id="t1", event_id="ev1", writes=writes, notes=notes)


def test_a_key_is_planned_once_and_the_first_plan_wins(store: AnyStore) -> None:
    [[first]] = store.plan_writes([plan(comment("first"), notes=(note("allowed: comment"),))])
    assert first.state is WriteState.PLANNED and first.write.body == "first"
    [[again]] = store.plan_writes([plan(comment("second"), notes=(note("again"),))])
    assert again.write.body == "first"  # the ledger keeps what was planned first
    details = [entry.detail for entry in store.list_timeline(event_id="ev1")]
    assert details == ["allowed: comment"]  # a plan that adds nothing records no notes


def test_notes_of_a_plan_without_writes_are_recorded(store: AnyStore) -> None:
    store.plan_writes([plan(notes=(note("denied: comment: blocked by policy"),))])
    assert [e.detail for e in store.list_timeline(event_id="ev1")] == [
        "denied: comment: blocked by policy"
    ]


def test_updates_are_guarded_and_record_their_step(store: AnyStore) -> None:
    write = comment()
    store.plan_writes([plan(write)])
    claim = WriteUpdate(key=write.key, state=WriteState.CALLING, only_from=OPEN,
                        start_attempt=True)  # fmt: skip
    [claimed] = store.update_writes([claim])
    assert claimed is not None and claimed.attempts == 1 and claimed.state is WriteState.CALLING
    done = WriteUpdate(
        key=write.key, state=WriteState.DONE, only_from=CALLING,
        detail="comment: comment 5 created", remote_id="5", step=Step.WRITTEN,
    )  # fmt: skip
    [finished, refused] = store.update_writes([done, done])
    assert finished is not None and finished.remote_id == "5"
    assert refused is None  # done already: the guard refuses a second change
    [after_claim] = store.update_writes([claim])
    assert after_claim is None  # a done write is never claimed again
    steps = store.list_timeline(event_id="ev1")
    assert [(s.step, s.detail) for s in steps] == [("written", "comment: comment 5 created")]
    [listed] = store.list_writes(event_id="ev1")
    assert listed.state is WriteState.DONE and listed.as_json()["target"] == "octo/hello#7"


def test_due_writes_are_open_ones_whose_time_has_come(store: AnyStore) -> None:
    now_write, later_write, done_write = comment(event="a"), comment(event="b"), comment(event="c")
    store.plan_writes([plan(now_write, later_write, done_write)])
    store.update_writes([
        WriteUpdate(key=k, state=WriteState.CALLING, only_from=OPEN, start_attempt=True)
        for k in (later_write.key, done_write.key)
    ])  # fmt: skip
    store.update_writes([
        WriteUpdate(key=later_write.key, state=WriteState.PLANNED, only_from=CALLING,
                    next_at=time.time() + 60),
        WriteUpdate(key=done_write.key, state=WriteState.DONE, only_from=CALLING),
    ])  # fmt: skip
    due = store.due_writes(now=time.time())
    assert [record.key for record in due] == [now_write.key]
    assert store.due_writes(now=time.time(), skip={now_write.key}) == []
    later = store.due_writes(now=time.time() + 61)
    assert [record.key for record in later] == [now_write.key, later_write.key]


def test_a_write_found_calling_is_due_so_a_restart_resolves_it(store: AnyStore) -> None:
    write = comment()
    store.plan_writes([plan(write)])
    store.update_writes([WriteUpdate(key=write.key, state=WriteState.CALLING, only_from=OPEN,
                                     start_attempt=True)])  # fmt: skip
    [due] = store.due_writes(now=time.time())
    assert due.state is WriteState.CALLING and due.attempts == 1


@sqlite_only
def test_ledger_commits_are_synced_to_disk(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger must survive a power cut, unlike task updates (synced=False)."""
    asked: list[bool] = []
    real = store._write

    def spy(doing: str, *, synced: bool = True):  # type: ignore[no-untyped-def]
        asked.append(synced)
        return real(doing, synced=synced)

    monkeypatch.setattr(store, "_write", spy)
    write = comment()
    store.plan_writes([plan(write)])
    store.update_writes([WriteUpdate(key=write.key, state=WriteState.CALLING, only_from=OPEN)])
    assert asked == [True, True]


def test_an_events_brief_holds_only_the_asked_attributes(store: AnyStore) -> None:
    from tests.integration.store.stores import delivery

    [event] = store.insert_events([delivery()])
    assert event is not None
    keys = ("repo_owner", "number", "missing", *sorted(event.attrs)[:2])
    brief = store.get_event_brief(event.id, keys=keys)
    assert brief is not None and brief.source == event.source and brief.type == event.type
    expected = {k: event.attrs[k] for k in keys if k in event.attrs and event.attrs[k] is not None}
    assert brief.attrs == expected and "missing" not in brief.attrs
    assert brief.raw == b""
    assert store.get_event_brief("nope", keys=keys) is None


def test_a_new_plan_opens_a_failed_or_dry_run_write_again_but_never_a_done_one(
    store: AnyStore,
) -> None:
    failed, done, dry = comment(event="f"), comment(event="d"), comment(event="r")
    store.plan_writes([plan(failed, done)])
    store.plan_writes([WritePlan(task_id="t1", event_id="ev1", writes=[dry],
                                 state=WriteState.DRY_RUN)])  # fmt: skip
    claims = [WriteUpdate(key=w.key, state=WriteState.CALLING, only_from=OPEN, start_attempt=True)
              for w in (failed, done)]  # fmt: skip
    store.update_writes(claims)
    store.update_writes([
        WriteUpdate(key=failed.key, state=WriteState.DEAD, only_from=CALLING, detail="502"),
        WriteUpdate(key=done.key, state=WriteState.DONE, only_from=CALLING),
    ])  # fmt: skip
    again = [replace(w, body="new text") for w in (failed, done, dry)]
    [records] = store.plan_writes([plan(*again)])
    by_key = {r.key: r for r in records}
    assert by_key[failed.key].state is WriteState.PLANNED
    assert by_key[failed.key].attempts == 1  # tried before: looked for on the forge first
    assert by_key[failed.key].write.body == "new text"
    assert by_key[done.key].state is WriteState.DONE and by_key[done.key].write.body == "hello"
    assert by_key[dry.key].state is WriteState.PLANNED and by_key[dry.key].attempts == 0
    due = {r.key for r in store.due_writes(now=time.time())}
    assert due == {failed.key, dry.key}
