"""The timeline: every step of an event and its tasks, in the order they happened (pure).

``mecha event show`` prints it; the store writes an entry in the same transaction as the
change it records, so the timeline never claims a step the data does not show.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from typing_extensions import TypedDict  # pydantic reads it (to make the API's schema) on 3.11

from mecha.event import timestamp


class Step(StrEnum):
    """What happened."""

    RECEIVED = "received"  # the event was stored
    MATCHED = "matched"  # matching decided; detail names the workers that took it
    SKIPPED = "skipped"  # no worker took it
    HELD = "held"  # a rule matched with auto: false
    CREATED = "created"  # a task was made (API tasks; event tasks come with matched)
    WAITING = "waiting"  # its worker cannot take it now (offline, error); detail says why
    DISPATCHED = "dispatched"  # a send to the worker started
    RETRY = "retry"  # a transient failure; detail says when the next attempt goes
    FAILED = "failed"  # the task failed for good (dead-letter after retries)
    COMPLETED = "completed"  # the worker answered with a result
    CANCELLED = "cancelled"  # by hand
    #: a newer event's task for the same flow key replaced it (or will drop its answer)
    SUPERSEDED = "superseded"
    REQUEUED = "requeued"  # a retry by hand, or an in-flight task found after a crash
    EVENT_FAILED = "event failed"  # the event could not be matched
    POLICY = "policy"  # one policy decision on a result: allowed, denied or skipped, and why
    DRY_RUN = "dry run"  # a write shown, not sent; detail is the request it would make
    WRITTEN = "written"  # a write reached the forge; detail says what it did
    WRITE_RETRY = "write retry"  # a transient forge failure; detail says when it goes again
    WRITE_FAILED = "write failed"  # the forge refused, or attempts ran out (dead-letter)
    #: a worker was added, replaced or removed while serve ran, and what serve did about it
    #: (a worker's own entry: no event, no task)
    DEFINITION = "definition"
    #: an event replayed by hand: on the new event "replay of <id> by <who>", on the
    #: replayed one "replayed as <id> by <who>"
    REPLAY = "replay"
    #: a worker started or stopped by hand while serve ran (a worker's own entry)
    WORKER_STARTED = "worker started"
    WORKER_STOPPED = "worker stopped"


@dataclass(frozen=True, kw_only=True, slots=True)
class TimelineEntry:
    """One step."""

    at: float
    step: str
    event_id: str = ""
    task_id: str = ""
    worker: str = ""
    detail: str = ""


class TimelineJson(TypedDict):
    """One step of the timeline: when (RFC 3339), what (a ``Step``), of which event, task
    and worker ("" where none), and the step's detail."""

    at: str
    step: str
    event_id: str
    task_id: str
    worker: str
    detail: str


def timeline_json(entry: TimelineEntry) -> TimelineJson:
    """The entry as the API and ``--json`` output show it."""
    return {
        "at": timestamp(entry.at),
        "step": entry.step,
        "event_id": entry.event_id,
        "task_id": entry.task_id,
        "worker": entry.worker,
        "detail": entry.detail,
    }
