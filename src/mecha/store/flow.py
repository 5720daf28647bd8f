"""Per-key flow control as every store applies it: what a new task does to its key (pure).

A worker's ``flow:`` gives each task a key. Every store keeps the same three rules, in the
transaction that records the task:

- **Order.** A claim of a keyed task is held back while another task of its worker and key
  runs, or an older one (its event arrived first) still waits: a key's tasks run one at a
  time, oldest event first.
- **Replacing.** With ``supersede`` or ``debounce``, a new task replaces its key's waiting
  ones (they end ``superseded``, naming it); a new task older than one already stored for
  the key is born superseded by the newest. With ``supersede``, the key's running task is
  *marked*: it keeps its slot until its worker answers, then ends ``superseded`` and its
  answer is dropped (nothing is written). So a key has at most one running and one
  waiting task.
- **Debounce.** The new task waits ``debounce`` seconds from its event's arrival
  (``next_retry_at``); each newer event replaces it and starts the wait again, so the task
  that runs is the last one, once the key has been quiet that long.

A marked task changes state only to ``superseded`` (or ``cancelled``): its late answer,
failure or retry is refused, and a stop or a dead node's lease ending makes it superseded
rather than pending (``after_marked``).
"""

from __future__ import annotations

from mecha.duration import format_duration
from mecha.event import timestamp
from mecha.task import FlowMark, NewTask, Task, TaskState
from mecha.timeline import Step, TimelineEntry


def new_task(new: NewTask, task_id: str, now: float) -> Task:
    """The Task a store records for ``new``: pending, keyed and debounced by its flow."""
    flow = new.flow
    return Task(
        id=task_id, worker=new.worker, event_id=new.event_id, dedup_key=new.dedup_key,
        prompt=new.prompt, context=dict(new.context), created_at=now, updated_at=now,
        next_retry_at=flow.at + flow.debounce if flow is not None and flow.debounce else 0.0,
        flow_key=flow.key if flow is not None else "", flow_at=flow.at if flow else 0.0,
    )  # fmt: skip


def change_allowed(state: TaskState, marked: bool) -> bool:
    """Whether a task may move to ``state``: a marked one (its key's newer task replaced it)
    only to superseded or cancelled, an unmarked one to anything but superseded."""
    if state is TaskState.CANCELLED:
        return True
    return marked == (state is TaskState.SUPERSEDED)


def mark_guard_sql(mark: str) -> str:
    """``change_allowed`` as a WHERE clause on a task row, with ``mark`` as the placeholder
    (``?`` or ``%s``); its parameters are ``mark_guard(update.state)``."""
    return f"({mark} OR (superseded_by <> '') = {mark})"


def mark_guard(state: TaskState) -> tuple[bool, bool]:
    """The parameters of ``mark_guard_sql`` for a change to ``state``."""
    return state is TaskState.CANCELLED, state is TaskState.SUPERSEDED


def superseded_detail(by: Task, key: str) -> str:
    """Why a waiting task ended ``superseded``."""
    return f"superseded by task {by.id} (a newer event {by.event_id} for {key}); never sent"


def born_superseded_detail(by_id: str, key: str) -> str:
    """Why a new task of an older event ended ``superseded`` at once."""
    return f"superseded by task {by_id}: a newer event for {key} came first; never sent"


def marked_detail(by: Task, key: str) -> str:
    """What happens to a running task a newer one supersedes."""
    return (f"superseded by task {by.id} (a newer event {by.event_id} for {key}) while it "
            "runs: its answer will be dropped, and the newer task starts when it ends")  # fmt: skip


def dropped_detail(by_id: str) -> str:
    """A marked task's send ended (or its node stopped): nothing of it is written."""
    return f"superseded by task {by_id}: the worker's answer is dropped, nothing is written"


def debounce_detail(flow: FlowMark) -> str:
    """The wait of a debounced task."""
    return (f"debounce: waits until {flow.key} has been quiet for "
            f"{format_duration(flow.debounce)}; starts at {timestamp(flow.at + flow.debounce)} "
            "unless a newer event for it comes")  # fmt: skip


def held_detail(key: str) -> str:
    """Why a keyed task's claim waits."""
    return f"flow: another task for {key} runs or is older; this one goes after it"


def flow_entry(
    event_id: str, task_id: str, worker: str, detail: str, *, at: float, step: str = ""
) -> TimelineEntry:
    """A timeline entry flow control makes (``superseded`` unless ``step`` says else)."""
    return TimelineEntry(at=at, step=step or Step.SUPERSEDED, event_id=event_id,
                         task_id=task_id, worker=worker, detail=detail)  # fmt: skip
