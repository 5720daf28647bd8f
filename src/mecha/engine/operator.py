"""What an operator may do by hand, in one place: the dashboard, the JSON API and the CLI call it.

- **retry a task**: failed or cancelled → pending, attempts reset (a running serve sends it);
- **cancel a task**: pending or running → cancelled (a running serve abandons the send);
- **retry writes**: an event's failed and dead-lettered writes (or one, by ledger key)
  planned again with a fresh budget;
- **replay an event**: a new delivery made from the stored event, with a fresh delivery
  id that names the original, through the pipeline like a webhook (store → match →
  dispatch), so today's workers decide; the signature was checked on arrival;
- **start or stop a worker** while serve runs, through serve's ``WorkerControl``.

Each action takes ``who`` (free text: "alice (dashboard, 127.0.0.1)") and records a
timeline entry saying what was done, by whom. Every refusal is a MechaError with a hint,
raised before anything is written. Task and write changes are guarded updates, so a
change serve made meanwhile wins and the refusal says where the thing is now.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Protocol

from mecha.engine import tracing
from mecha.errors import (
    MechaError,
    RegistryError,
    TaskStateError,
    UsageError,
    WriteNotFound,
    WriteStateError,
)
from mecha.event import MAX_DELIVERY_ID, Delivery, Event
from mecha.forges.hydration import HYDRATED_ATTRS
from mecha.policy.writes import WriteState
from mecha.store import Store, TaskUpdate, WorkerRecord, WriteRecord, WriteUpdate
from mecha.task import Task, TaskState
from mecha.timeline import Step, TimelineEntry

if TYPE_CHECKING:
    from mecha.engine.pipeline import Pipeline  # the pipeline's import costs the CLI

RETRYABLE = frozenset({TaskState.FAILED, TaskState.CANCELLED})
CANCELLABLE = frozenset({TaskState.PENDING, TaskState.RUNNING})
GIVEN_UP = frozenset({WriteState.FAILED, WriteState.DEAD})
#: attributes a replay takes afresh (the forge is asked again if a worker needs them)
FETCHED_ATTRS = frozenset({*HYDRATED_ATTRS, "author_access_level", "author_access_error"})
#: the attributes that mark a replay (shown with the event; a filter may use them)
REPLAY_OF, REPLAYED_BY = "replay_of", "replayed_by"
#: a replay's delivery id: ``replay-<8 hex>:<the first delivery's id>``
REPLAY_PREFIX = "replay-"


class WorkerControl(Protocol):
    """What a running serve does to start or stop a worker of each kind (``mecha.app``)."""

    async def start(self, record: WorkerRecord) -> tuple[WorkerRecord, str]:
        """Start worker ``record`` (refusing before any change); the new record and what
        was done, briefly ("health check passed: online at URL")."""
        ...

    async def stop(self, record: WorkerRecord) -> tuple[WorkerRecord, str]:
        """Stop worker ``record`` (refusing before any change); the new record and what
        was done."""
        ...


class Operator:
    """The operator's actions over the store (and, in serve, the pipeline and the workers).

    Built by the composition root (``mecha.app.serve``) with everything; the CLI builds it
    with the store alone, so replays and worker starts are refused there with a hint.
    ``submit`` hands a retried task to the dispatcher at once (else its poll finds it).
    """

    def __init__(
        self,
        *,
        store: Store,
        pipeline: Pipeline | None = None,
        workers: WorkerControl | None = None,
        submit: Callable[[Sequence[Task]], None] | None = None,
        reads: Executor | None = None,
    ) -> None:
        self._store = store
        self._pipeline = pipeline
        self._workers = workers
        self._submit = submit
        self._reads = reads

    # --- tasks ------------------------------------------------------------------------

    def retry_task(self, task_id: str, *, who: str) -> Task:
        """A failed or cancelled task back to pending, attempts reset."""
        found = self._store.get_task(task_id)
        if found.state not in RETRYABLE:
            raise cannot_retry(found)
        update = TaskUpdate(
            task_id=found.id, state=TaskState.PENDING, only_from=RETRYABLE, error="",
            reset_attempts=True, step=Step.REQUEUED, detail=by_hand(who),
        )  # fmt: skip
        [done] = self._store.update_tasks([update])
        if done is None:
            raise cannot_retry(self._store.get_task(found.id))
        if self._submit is not None:
            self._submit([done])
        return done

    def cancel_task(self, task_id: str, *, who: str) -> Task:
        """A pending or running task cancelled (a running send is abandoned by serve)."""
        found = self._store.get_task(task_id)
        if found.state not in CANCELLABLE:
            raise cannot_cancel(found)
        update = TaskUpdate(
            task_id=found.id, state=TaskState.CANCELLED, only_from=CANCELLABLE,
            step=Step.CANCELLED, detail=by_hand(who),
        )  # fmt: skip
        [done] = self._store.update_tasks([update])
        if done is None:
            raise cannot_cancel(self._store.get_task(found.id))
        return done

    # --- writes -----------------------------------------------------------------------

    def retry_writes(self, event_id: str, *, who: str, key: str = "") -> list[WriteRecord]:
        """The event's failed and dead-lettered writes (only ``key``'s, if given) planned
        again with a fresh budget; the reopened records. A write tried before is looked
        for on the forge first, so one that reached it is not made twice."""
        event = self._store.get_event(event_id)
        writes = self._store.list_writes(event_id=event.id)
        if key:
            writes = [w for w in writes if w.key == key]
            if not writes:
                raise WriteNotFound(
                    f"event {event.id} has no write with key {key!r}",
                    hint=f"its writes and their keys: mecha event show {event.id} --json "
                    f"(writes[].key), or GET /event/{event.id}",
                )
        stuck = [w for w in writes if w.state in GIVEN_UP]
        if not stuck:
            raise nothing_to_retry(event.id, writes, key=key)
        reopened = self._store.update_writes([
            WriteUpdate(key=w.key, state=WriteState.PLANNED, only_from=GIVEN_UP,
                        fresh_budget=True, step=Step.WRITE_RETRY,
                        detail=f"{w.write.action}: tried again {by_hand(who)}")
            for w in stuck
        ])  # fmt: skip
        done = [record for record in reopened if record is not None]
        if not done:  # serve reopened or finished them meanwhile
            raise nothing_to_retry(event.id, self._store.list_writes(event_id=event.id), key=key)
        return done

    # --- events -----------------------------------------------------------------------

    async def replay_event(self, event_id: str, *, who: str) -> Event:
        """A new event from the stored one, matched by today's workers; the new event."""
        pipeline = self._pipeline
        if pipeline is None:
            raise UsageError(
                "an event is replayed by a running mecha serve (its workers decide)",
                hint=f"start mecha serve, then: mecha event replay {event_id} (or POST "
                f"/event/{event_id}/replay)",
            )
        original = await self._call(self._store.get_event, event_id)
        made: Event | None = None
        for _ in range(3):  # a fresh random id: a clash is most unlikely, and then retried
            made = await pipeline.receive(replay_delivery(original, who=who))
            if made is not None:
                break
        if made is None:
            raise MechaError(
                f"the replay of event {original.id} was stored as a duplicate three times",
                hint="this is a bug in mecha; report it with this message",
            )
        now = time.time()
        entries = [
            TimelineEntry(at=made.created_at, step=Step.REPLAY, event_id=made.id,
                          detail=f"replay of {original.id} by {who}"),
            TimelineEntry(at=now, step=Step.REPLAY, event_id=original.id,
                          detail=f"replayed as {made.id} by {who}"),
        ]  # fmt: skip
        await self._call(self._store.add_timeline, entries)
        return made

    # --- workers ----------------------------------------------------------------------

    async def start_worker(self, name: str, *, who: str) -> WorkerRecord:
        """Start worker ``name`` the way serve runs its kind; the record as it is now."""
        return await self._worker(name, "start", who=who)

    async def stop_worker(self, name: str, *, who: str) -> WorkerRecord:
        """Stop worker ``name``: its new tasks wait until it is started again."""
        return await self._worker(name, "stop", who=who)

    async def _worker(self, name: str, doing: str, *, who: str) -> WorkerRecord:
        control = self._workers
        if control is None:
            raise UsageError(
                f"this operator cannot {doing} workers: it runs without mecha serve",
                hint=f"mecha worker {doing} {name}, or POST /worker/{name}/{doing} on mecha serve",
            )
        record = await self._call(self._store.get_worker, name)
        act = control.start if doing == "start" else control.stop
        step = Step.WORKER_STARTED if doing == "start" else Step.WORKER_STOPPED
        try:
            now, what = await act(record)
        except (UsageError, RegistryError):
            raise  # a refusal: nothing was done
        except MechaError as failed:  # it was tried and failed: the timeline says so too
            await self._note(name, step, f"{doing} failed: {failed.message}; {by_hand(who)}")
            raise
        await self._note(name, step, f"{what}; {by_hand(who)}")
        return now

    async def _note(self, name: str, step: str, detail: str) -> None:
        entry = TimelineEntry(at=time.time(), step=step, worker=name, detail=detail)
        await self._call(self._store.add_timeline, [entry])

    async def _call(self, call: Callable[..., Any], /, *args: Any) -> Any:
        import asyncio  # here: the CLI's task and write commands never wait on a loop

        return await asyncio.get_running_loop().run_in_executor(self._reads, call, *args)


def by_hand(who: str) -> str:
    """The timeline's word for an action done by a person: ``by hand: <who>``."""
    return f"by hand: {who}" if who else "by hand"


def replay_delivery(original: Event, *, who: str) -> Delivery:
    """The delivery a replay of ``original`` makes: its body, headers and attributes (less
    what the forge is asked for again), a fresh delivery id naming the first delivery's,
    and ``replay_of`` / ``replayed_by`` attributes."""
    first = original.delivery_id
    if first.startswith(REPLAY_PREFIX) and ":" in first:
        first = first.partition(":")[2]  # a replay of a replay names the first delivery
    head = f"{REPLAY_PREFIX}{secrets.token_hex(4)}:"
    # what was fetched is fetched again; the original's trace is not the replay's
    attrs = {k: v for k, v in original.attrs.items()
             if k not in FETCHED_ATTRS and k != tracing.TRACEPARENT}  # fmt: skip
    attrs[REPLAY_OF], attrs[REPLAYED_BY] = original.id, who
    return Delivery(
        source=original.source, type=original.type,
        delivery_id=head + first[: MAX_DELIVERY_ID - len(head)], actor=original.actor,
        subject=original.subject, attrs=attrs, raw=original.raw, headers=dict(original.headers),
    )  # fmt: skip


def cannot_retry(now: Task) -> TaskStateError:
    """Why task ``now`` cannot be retried, and what to do instead."""
    if now.state is TaskState.PENDING:
        hint = "it waits to be sent; a running mecha serve sends it within a second"
    elif now.state is TaskState.RUNNING:
        hint = f"its worker has it now; wait for the end, or cancel it: mecha task cancel {now.id}"
    else:
        hint = "to run its prompt again, send it as a new task (POST /task)"
    return TaskStateError(
        f"task {now.id} is {now.state.value}; only failed or cancelled tasks can be retried",
        hint=hint,
    )


def cannot_cancel(now: Task) -> TaskStateError:
    """Why task ``now`` cannot be cancelled, and what to do instead."""
    if now.state is TaskState.COMPLETED:
        hint = "it is done; there is nothing left to cancel"
    elif now.state is TaskState.SUPERSEDED:
        hint = "a newer task of its flow key replaced it; there is nothing left to cancel"
    else:
        hint = f"nothing is running; to send it again: mecha task retry {now.id}"
    return TaskStateError(
        f"task {now.id} is already {now.state.value}; only pending or running tasks can "
        "be cancelled",
        hint=hint,
    )


def nothing_to_retry(event_id: str, writes: Sequence[WriteRecord], *, key: str) -> WriteStateError:
    """The refusal when no write of the event (or of ``key``) failed or was dead-lettered."""
    if key and writes:
        [write] = [w for w in writes if w.key == key] or writes[:1]
        return WriteStateError(
            f"write {key} of event {event_id} is {write.state.value}; only failed or "
            "dead-lettered writes can be tried again",
            hint="a planned or calling write is being sent by mecha serve; a done one is "
            "never repeated",
        )
    return WriteStateError(
        f"event {event_id} has no failed or dead-lettered writes",
        hint=f"its writes and where they stand: mecha event show {event_id}",
    )
