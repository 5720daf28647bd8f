"""What each dashboard action asks before, and says after: the confirmation's question, the
button, and the notice the page shows once it is done (``?done=<action>&on=<id>``: the
words are the dashboard's own, so a link cannot make a page say anything else)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kind:
    """One action: its question, the button's words, and what it says when done."""

    question: str
    button: str
    done: str


ACTIONS = {
    "task-retry": Kind(
        "Send task {id} again, with its attempts reset?", "Retry", "Task {id} is pending again."
    ),
    "task-cancel": Kind(
        "Cancel task {id}? A send under way is abandoned; its answer is not recorded.",
        "Cancel task", "Task {id} is cancelled.",
    ),
    "write-retry": Kind(
        "Try the failed and dead-lettered writes of event {id} again? A write that did reach "
        "the forge is found there first, not made twice.",
        "Retry writes", "The writes of event {id} will be tried again.",
    ),
    "worker-start": Kind("Start worker {id}?", "Start", "Worker {id} is starting."),
    "worker-stop": Kind(
        "Stop worker {id}? Its tasks wait until it is started again.", "Stop",
        "Worker {id} is stopped.",
    ),
    "event-replay": Kind(
        "Replay event {id}? It is matched again against today's workers, as a new delivery "
        "marked as a replay.",
        "Replay", "Event {id} was replayed as a new event.",
    ),
}  # fmt: skip


def done_notice(params: Mapping[str, str]) -> str:
    """What the action named in ``?done=&on=`` did ("" if none)."""
    kind = ACTIONS.get(params.get("done", ""))
    return kind.done.format(id=params.get("on", "")[:12]) if kind is not None else ""
