"""What every Store says and decides the same way, whatever keeps the data.

The refusals (their messages and hints are what people read), the timeline entries a store
writes by itself, how an event follows its finished tasks, and how ids and definitions are
written. ``SqliteStore`` uses them, and so does ``mecha.testing``'s ``MemoryStore``; the
store conformance suite checks that both behave alike.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from mecha.errors import (
    EventNotFound,
    StoreError,
    TaskNotFound,
    WorkerExists,
    WorkerNotFound,
    WorkerStateError,
)
from mecha.event import Event, EventState
from mecha.policy.writes import WriteState, write_from_json
from mecha.store import (
    EventOutcome,
    TaskUpdate,
    WorkerLimits,
    WorkerRecord,
    WriteRecord,
    WriteUpdate,
)
from mecha.task import FINAL_STATES, Task, TaskState
from mecha.timeline import Step, TimelineEntry
from mecha.worker.kind import WorkerState

#: shortest id prefix the lookups accept (``mecha event show 3f2a9c``)
MIN_PREFIX = 6


def new_id() -> str:
    """A new row id: 32 random hex digits."""
    return uuid.uuid4().hex


def by_prefix(row_id: str) -> bool:
    """Whether ``row_id``, found as no whole id, is looked for as an id prefix."""
    return len(row_id) >= MIN_PREFIX and row_id.isalnum()


def json_text(value: Any) -> str:
    """Compact JSON, as attributes, headers, contexts and results are kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def pull_columns(attrs: Mapping[str, Any]) -> tuple[int, str]:
    """The ``number`` and ``head_sha`` columns of an event: its attributes of those names
    (0 and "" when absent or of another type), kept apart so a pull request's events are
    found by an index (``Store.last_reviewed_head``) without reading any JSON."""
    number, head = attrs.get("number"), attrs.get("head_sha")
    if not isinstance(number, int) or isinstance(number, bool):
        number = 0
    return number, (head if isinstance(head, str) else "")


def definition_text(record: WorkerRecord) -> str:
    """A worker's definition as kept: compact, key-sorted JSON; StoreError if it is not."""
    try:
        return json.dumps(record.definition, separators=(",", ":"), sort_keys=True,
                          allow_nan=False)  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f'worker "{record.name}" has a definition that is not plain JSON data: {exc}',
            hint="this is a bug in mecha; report it with this message",
        ) from exc


# --- the timeline entries a store writes itself ----------------------------------------

#: a W3C traceparent value (``mecha.engine.tracing``): its trace id and flags captured
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")


def received_entry(event: Event) -> TimelineEntry:
    """The first step of every event; with its trace id when its delivery was traced and
    sampled (the ``traceparent`` attribute ``mecha.engine.tracing`` keeps), to find the
    trace by."""
    detail = f"{event.source} {event.type}" + (f" from {event.actor}" if event.actor else "")
    traced = _TRACEPARENT.fullmatch(str(event.attrs.get("traceparent", "")))
    if traced and int(traced[2], 16) & 1:  # sampled: the trace is to be found
        detail += f"; trace {traced[1]}"
    return TimelineEntry(at=event.created_at, step=Step.RECEIVED, event_id=event.id, detail=detail)


def decided_entry(outcome: EventOutcome, now: float) -> TimelineEntry:
    """The timeline entry for what matching decided."""
    decisions = sorted(outcome.decisions, key=lambda d: d.worker)
    taken = [d.worker for d in decisions if d.outcome == "matched"]
    held = [f"{d.worker} ({d.reason})" for d in decisions if d.outcome == "held"]
    if outcome.error and not taken:
        return TimelineEntry(at=now, step=Step.EVENT_FAILED, event_id=outcome.event_id,
                             detail=outcome.error)  # fmt: skip
    if taken:
        step, detail = Step.MATCHED, "taken by " + ", ".join(taken)
    elif held:
        step, detail = Step.HELD, "held by " + ", ".join(held)
    else:
        step, detail = Step.SKIPPED, "no worker takes it"
    # a worker whose rule fit but whose trust refused the sender: said where it is seen
    refused = [f"{d.worker}: {_trust_part(d.reason)}" for d in decisions
               if d.outcome == "not_matched" and "trust: " in d.reason]  # fmt: skip
    if refused:
        detail += "; refused by " + "; ".join(refused)
    if outcome.error:
        detail += f"; {outcome.error}"
    return TimelineEntry(at=now, step=step, event_id=outcome.event_id, detail=detail)


def _trust_part(reason: str) -> str:
    """The trust refusal of a decision's reason (its rules' misses, ``rule N: …``, joined by
    "; "; a miss may hold "; " itself)."""
    parts = [part for part in _RULE_MISS.split(reason) if "trust: " in part]
    return "; ".join(parts)


_RULE_MISS = re.compile(r"; (?=rule \d+: )")


REQUEUED_DETAIL = "it was in flight when mecha serve stopped; sending it again"
#: nodes stopped, or silent, for longer than this are forgotten when a node registers
NODE_MEMORY = 7 * 86400


def lease_end(update: TaskUpdate | WriteUpdate, now: float) -> float:
    """When a claim's lease ends: ``now + lease`` for a node's claim, else 0 (none)."""
    return now + update.lease if update.node else 0.0


def bucket_tokens(limits: WorkerLimits, stored: Sequence[float] | None, now: float) -> float:
    """The tokens a worker's shared bucket holds at ``now`` (pure): full if it was never
    used, else ``stored`` = (tokens, at) refilled at ``limits.rate`` up to ``burst``."""
    full = float(max(1, limits.burst))
    if stored is None:
        return full
    tokens, at = stored
    return min(full, tokens + max(0.0, now - at) * limits.rate)


def held_back(limits: WorkerLimits, running: int, tokens: float) -> bool:
    """Whether a claim must wait: the worker runs ``limits.concurrency`` tasks already, or
    its bucket (rate limited) has no whole token (pure)."""
    return running >= limits.concurrency or (limits.rate > 0 and tokens < 1)


def fence(update: TaskUpdate) -> tuple[str, str]:
    """The node a change of a running task must come from, twice (SQL's two uses): "" for a
    claim or an update of no node (any may change it), else the update's node."""
    node = "" if update.start_attempt else update.node
    return node, node


def write_claimable(update: WriteUpdate, state: WriteState, lease_until: float, now: float) -> bool:
    """Whether ``update`` may apply to a write in ``state`` whose lease ends at
    ``lease_until`` (its state guard aside): a claim (``start_attempt``) takes a write
    another node is calling only once that node's lease ended."""
    return not (update.start_attempt and state is WriteState.CALLING and lease_until >= now)


def expired_detail(node_id: str) -> str:
    """The timeline detail of a task taken back from node ``node_id`` ("" for none)."""
    if not node_id:
        return REQUEUED_DETAIL
    return f"node {node_id} stopped renewing its lease on it; sending it again"


# --- an event follows its tasks ---------------------------------------------------------


def reopened_from(state: TaskState) -> tuple[EventState, ...]:
    """The event states a task moving to ``state`` (running, pending) makes ``dispatched``:
    a send starts; a finished task back to pending (a retry by hand) opens the event again.
    A pending task that stays pending moves nothing."""
    if state is TaskState.RUNNING:
        return (EventState.COMPLETED, EventState.FAILED, EventState.MATCHED)
    return (EventState.COMPLETED, EventState.FAILED)


def finished(counts: Mapping[str, int]) -> tuple[EventState, str] | None:
    """The event's state and error once its tasks (``counts`` by state) are all final;
    None while one is still to run. A superseded task counts as done: a newer event's task
    for its flow key took its place."""
    final = {state.value for state in FINAL_STATES}
    if any(state not in final for state in counts):
        return None
    failed = sum(n for s, n in counts.items() if s not in _DONE)
    done = EventState.FAILED if failed else EventState.COMPLETED
    return done, f"{failed} of {sum(counts.values())} tasks did not complete" if failed else ""


_DONE = frozenset({TaskState.COMPLETED.value, TaskState.SUPERSEDED.value})


# --- refusals ----------------------------------------------------------------------------


def closed(where: object, doing: str) -> StoreError:
    """A store used after ``close()``."""
    return StoreError(
        f"the database {where} was already closed (while {doing})",
        hint="this is a bug in mecha: a store was used after close(); report it",
    )


def event_not_found(event_id: str, *, found: int) -> EventNotFound:
    """No event (``found`` 0), or more than one, has this id or prefix."""
    which = "more than one event" if found else "no event"
    return EventNotFound(
        f'{which} has the id "{event_id}"',
        hint="see the stored events and their ids with `mecha event ls`",
    )


def task_not_found(task_id: str, *, found: int) -> TaskNotFound:
    """No task (``found`` 0), or more than one, has this id or prefix."""
    which = "more than one task" if found else "no task"
    return TaskNotFound(
        f'{which} has the id "{task_id}"',
        hint="see the stored tasks and their ids with `mecha task ls`",
    )


def worker_exists(taken: Sequence[str], repeated: Sequence[str]) -> WorkerExists:
    """A batch of workers refused: names registered already, names given twice."""
    parts = []
    if taken:
        verb = "is" if len(taken) == 1 else "are"
        parts.append(f"{_quoted(taken)} {verb} already registered")
    if repeated:
        verb = "appears" if len(repeated) == 1 else "appear"
        parts.append(f"{_quoted(repeated)} {verb} more than once in this batch")
    return WorkerExists(
        f"no workers were added: {'; '.join(parts)}",
        hint="give every worker a unique name; to update a registered worker after editing "
        "its file, run `mecha worker add --replace FILE`",
    )


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def worker_not_found(name: str) -> WorkerNotFound:
    """No worker is called ``name``."""
    return WorkerNotFound(
        f'no worker named "{name}" is registered',
        hint="see the registered workers with `mecha worker ls`",
    )


def worker_not_removable(
    name: str, state: str, allowed: Collection[WorkerState]
) -> WorkerStateError:
    """``remove_worker`` refused: the worker is in ``state``."""
    wanted = " or ".join(sorted(str(s) for s in allowed))
    when = f"only when {wanted}" if wanted else "in no state"
    return WorkerStateError(
        f'worker "{name}" is {state}; it can be removed {when}',
        hint=f"stop it first: mecha worker stop {name}",
    )


def worker_moved(name: str, now: WorkerState, wanted: WorkerState) -> WorkerStateError:
    """``set_worker_state(only_from=...)`` refused: another process changed it first."""
    return WorkerStateError(
        f'worker "{name}" is {now.value} now; not changed to {wanted.value}',
        hint="another mecha process changed it first; look again with mecha worker ls",
    )


# --- raw bodies and stored workers, as every store with a disk keeps them ----------------

#: raw bodies longer than this are kept zlib-compressed (webhook JSON shrinks about 5x)
COMPRESS_ABOVE = 2048


def pack_raw(raw: bytes) -> tuple[bytes, str]:
    """A raw body as kept, and its encoding (``zlib`` above ``COMPRESS_ABOVE`` bytes)."""
    if len(raw) > COMPRESS_ABOVE:
        return zlib.compress(raw, 1), "zlib"
    return raw, "identity"


def unpack_raw(raw: bytes, encoding: str) -> bytes:
    """A raw body as it came, from what ``pack_raw`` kept."""
    return zlib.decompress(raw) if encoding == "zlib" else bytes(raw)


def worker_unreadable(name: str, exc: Exception) -> StoreError:
    """A stored worker whose kind, state or definition this mecha cannot read."""
    return StoreError(
        f'worker "{name}" is stored in a form this mecha cannot read: {exc}',
        hint="upgrade mecha if a newer release wrote it; else remove it and add it again",
    )


# --- rows as both SQL stores select them ------------------------------------------------

#: a task row's columns, in the order ``task_from_row`` reads them
TASK_COLUMNS = (
    "id, worker, event_id, dedup_key, prompt, context, state, error, attempts, "
    "created_at, updated_at, result, next_retry_at, dispatched_at, finished_at, timeout, tokens, "
    "flow_key, flow_at, superseded_by"
)


def task_from_row(row: Sequence[Any]) -> Task:
    """A Task from a row of ``TASK_COLUMNS``."""
    (task_id, worker, event_id, dedup_key, prompt, context, state, error, attempts,
     created, updated, result, next_retry_at, dispatched_at, finished_at, timeout,
     tokens, flow_key, flow_at, superseded_by) = row  # fmt: skip
    return Task(
        id=task_id, worker=worker, event_id=event_id, dedup_key=dedup_key, prompt=prompt,
        context=json.loads(context), state=TaskState(state), error=error, attempts=attempts,
        result=json.loads(result) if result else {}, next_retry_at=next_retry_at,
        created_at=created, updated_at=updated, dispatched_at=dispatched_at,
        finished_at=finished_at, timeout=timeout, tokens=tokens, flow_key=flow_key,
        flow_at=flow_at, superseded_by=superseded_by,
    )  # fmt: skip


#: a write-ledger row's columns, in the order ``write_from_row`` reads them
WRITE_COLUMNS = (
    "key, task_id, event_id, spec, state, attempts, next_at, detail, remote_id, "
    "created_at, updated_at, node_id, lease_until"
)


def write_from_row(row: Sequence[Any]) -> WriteRecord:
    """A WriteRecord from a row of ``WRITE_COLUMNS``."""
    (_, task_id, event_id, spec, state, attempts, next_at, detail, remote_id, created,
     updated, node_id, lease_until) = row  # fmt: skip
    return WriteRecord(
        write=write_from_json(json.loads(spec)), task_id=task_id, event_id=event_id,
        state=WriteState(state), attempts=attempts, next_at=next_at, detail=detail,
        remote_id=remote_id, created_at=created, updated_at=updated, node=node_id,
        lease_until=lease_until,
    )  # fmt: skip


#: the ledger states ``Store.count_writes`` counts: made, or to be made
COUNTED_WRITE_STATES = (WriteState.PLANNED.value, WriteState.CALLING.value, WriteState.DONE.value)
