"""Fakes at the engine's seams (send, probe, hydrator, sinks) and workers to match with.

Nothing here stands in for the code under test: the fakes are what `mecha serve` would
plug into the engine from outside (a worker runtime, a forge client, the dispatcher and
write-back as the pipeline's sinks). ``eventually`` is the one way a test waits: it polls
for a state, with a generous deadline and no bound on how fast anything must be.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from mecha.engine.registry import LoadedWorker
from mecha.engine.targets import Target
from mecha.event import AttrValue, Delivery, Event, received
from mecha.forges.hydration import Hydration, RawDiff
from mecha.forges.incremental import Compared, since_last_attrs
from mecha.result import TaskResult
from mecha.runtimes.contract import WorkerFailure
from mecha.store import Store, WorkerRecord
from mecha.task import Task
from mecha.template.prompt import compile_template
from mecha.worker.kind import WorkerState
from mecha.worker.parser import parse_worker
from mecha.yaml_doc import Document

T = TypeVar("T")

#: how long a test waits for a state before it fails (seconds; never a speed bound)
DEADLINE = 60.0
HEAD = "2b" * 20
BASE = "1a" * 20
#: a GitHub pull request event's attributes, as the webhook parser makes them
PULL: dict[str, AttrValue] = {
    "repo_owner": "octo", "repo_name": "hello", "number": 7, "head_sha": HEAD,
    "base_sha": BASE, "title": "Fix the parser", "draft": False,
}  # fmt: skip


# --- workers -------------------------------------------------------------------------


def definition(
    name: str,
    *,
    prompt: str = "Review {{.title}}",
    on: Sequence[str] = ("pull_request.opened",),
    source: str = "github",
    **fields: Any,
) -> dict[str, Any]:
    """A worker file's mapping: an unmanaged worker with one rule, no rate limit."""
    written: dict[str, Any] = {
        "name": name,
        "endpoint": "http://127.0.0.1:9/",
        "events": [{"source": source, "on": list(on), "prompt": prompt}],
        "rate_limit": {"per_second": 0},
    }
    written.update(fields)
    return written


def loaded(written: dict[str, Any]) -> LoadedWorker:
    """The worker as the registry loads it: checked, its prompts compiled."""
    spec = parse_worker(Document(data=written, file="w.yml"), environ={}).spec
    prompts = tuple(compile_template(rule.prompt) for rule in spec.events)
    return LoadedWorker(name=spec.name, spec=spec, prompts=prompts, fingerprint="f00d")


def broken(name: str, why: str = "its file is gone") -> LoadedWorker:
    """A registered worker whose definition no longer checks out."""
    return LoadedWorker(name=name, broken=why)


def register(store: Store, *written: dict[str, Any], online: bool = True) -> None:
    """Add these workers to the store (as `mecha worker add` would), online unless told."""
    records = []
    for w in written:
        spec = loaded(w).spec
        assert spec is not None
        records.append(
            WorkerRecord(name=spec.name, kind=spec.kind, definition={"worker": w, "withheld": []})
        )
    store.add_workers(records)
    if online:
        for record in records:
            store.set_worker_state(record.name, WorkerState.ONLINE)


# --- events --------------------------------------------------------------------------


def delivery(
    delivery_id: str = "d-1",
    *,
    type: str = "pull_request.opened",
    source: str = "github",
    **attrs: Any,
) -> Delivery:
    """A verified GitHub pull request delivery (``attrs`` over PULL's)."""
    return Delivery(
        source=source, type=type, delivery_id=delivery_id, actor="mona",
        subject="octo/hello", attrs={**PULL, **attrs}, raw=b"{}",
    )  # fmt: skip


def event(delivery_id: str = "d-1", **attrs: Any) -> Event:
    """``delivery(...)`` as a new, received event."""
    return received(delivery(delivery_id, **attrs), now=time.time())


# --- the pipeline's sinks and hydrator ------------------------------------------------


class Journal:
    """What the sinks were handed, in order, from whichever thread (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, list[str]]] = []

    def add(self, what: str, ids: list[str]) -> None:
        """Note that ``what`` ("events" or "tasks") was handed ``ids``."""
        with self._lock:
            self.entries.append((what, ids))

    def ids(self, what: str) -> list[str]:
        """Every id handed to ``what``, in order."""
        with self._lock:
            return [i for kind, ids in self.entries if kind == what for i in ids]


class TaskSink:
    """The dispatcher's place in the pipeline: keeps the tasks it is handed."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.tasks: list[Task] = []

    def submit_threadsafe(self, tasks: Sequence[Task]) -> None:
        self.tasks.extend(tasks)
        self.journal.add("tasks", [t.id for t in tasks])


class EventSink:
    """Write-back's place in the pipeline: keeps the events it is handed."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.events: list[Event] = []

    def remember(self, events: Sequence[Event]) -> None:
        self.events.extend(events)
        self.journal.add("events", [e.id for e in events])


class Hydrator:
    """A forge that adds a diff to pull request events, once ``gate`` is set."""

    def __init__(self, attrs: dict[str, str] | None = None, *, error: str = "") -> None:
        self.attrs = (
            attrs if attrs is not None else {"diff": "--- a/x\n+++ b/x\n", "file_list": "x"}
        )
        self.error = error
        self.gate = asyncio.Event()
        self.asked: list[str] = []
        #: (event id, last reviewed head) of every comparison asked for
        self.compared: list[tuple[str, str]] = []

    def handles(self, event: Event) -> bool:
        return event.source == "github" and event.type.startswith("pull_request")

    async def hydrate(self, event: Event) -> Hydration | None:
        self.asked.append(event.id)
        await self.gate.wait()
        return Hydration(attrs=dict(self.attrs), error=self.error)

    async def since_last(self, event: Event, last: str, full: Hydration) -> dict[str, str]:
        """A comparison that says what it compared: ``changes since <last>``."""
        self.compared.append((event.id, last))
        compared = Compared(RawDiff(f"changes since {last}\n")) if last else None
        return since_last_attrs(full.attrs, last, compared, max_bytes=500_000)

    def asks_access(self, event: Event) -> bool:
        return False

    async def access(self, event: Event) -> dict[str, Any]:
        raise AssertionError("this forge is never asked for access levels")


# --- the worker runtime ---------------------------------------------------------------

Answer = TaskResult | WorkerFailure


class Worker:
    """A worker runtime's ``send``: answers each send with the next of ``answers`` (a result,
    or a failure to raise; the last one repeats), once ``gate`` is open. Counts sends in
    flight by worker name."""

    def __init__(self, *answers: Answer, gated: bool = False) -> None:
        self.answers = answers or (TaskResult(output="done"),)
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.sent: list[Task] = []
        self.targets: list[Target] = []
        self.in_flight: dict[str, int] = {}
        #: the most sends in flight at once, by worker
        self.most: dict[str, int] = {}
        #: the most sends in flight at once, all workers together
        self.peak = 0
        #: when each send started (time.monotonic)
        self.started: list[float] = []
        self.cancelled = 0

    def flying(self) -> int:
        """Sends in flight now, all workers together."""
        return sum(self.in_flight.values())

    async def send(self, target: Target, task: Task) -> TaskResult:
        self.sent.append(task)
        self.targets.append(target)
        self.started.append(time.monotonic())
        answer = self.answers[min(len(self.sent), len(self.answers)) - 1]
        name = target.name
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        self.most[name] = max(self.most.get(name, 0), self.in_flight[name])
        self.peak = max(self.peak, self.flying())
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight[name] -= 1
        if isinstance(answer, WorkerFailure):
            raise answer
        return answer


def transient(message: str = "503 from the worker") -> WorkerFailure:
    """A failure a retry may cure."""
    return WorkerFailure(message, transient=True, status=503)


async def healthy(target: Target) -> str:
    """A probe that finds every worker healthy."""
    return ""


# --- waiting --------------------------------------------------------------------------


async def eventually(
    check: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    what: str,
    *,
    deadline: float = DEADLINE,
) -> T:
    """Poll ``check`` until it gives something truthy; fail naming ``what`` after ``deadline``."""
    end = time.monotonic() + deadline
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found  # type: ignore[return-value]
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not so after {deadline} s")
        await asyncio.sleep(0.005)


async def turns(count: int = 50) -> None:
    """Let the loop run ``count`` times (to see that something does *not* happen)."""
    for _ in range(count):
        await asyncio.sleep(0)
