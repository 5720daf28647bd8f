"""Where each worker's tasks go and under which limits, from its definition and its state.

The dispatcher asks this every second (and whenever the registry changes): a worker file
edited with ``mecha worker add --replace`` or a worker started in another process takes
effect without a restart. A worker serve is restarting (an adapter, a persistent
container, after a change of definition) is *held*: its tasks wait, saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from mecha.budget import Budget
from mecha.engine.registry import LoadedWorker
from mecha.store import WorkerRecord
from mecha.worker.kind import WorkerKind, WorkerState


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """One worker as the dispatcher sends to it."""

    name: str
    kind: WorkerKind
    state: WorkerState
    endpoint: str = ""
    api_key: str = ""
    timeout: float = 600.0
    concurrency: int = 1
    max_retries: int = 3
    rate: float = 2.0
    burst: int = 5
    #: why its tasks wait instead of going out ("" when they can go)
    waiting: str = ""
    #: a disposable managed worker: each task gets a fresh container (its state is unused)
    disposable: bool = False
    #: the definition's fingerprint, named on each send's timeline entry
    definition: str = ""
    #: its ``budget:`` (None: none), and the most tokens its model writes when Mecha calls
    #: the model itself (an adapter's max_tokens; 0: not known beforehand)
    budget: Budget | None = None
    max_output: int = 0


@dataclass(frozen=True, slots=True)
class LocalWorker:
    """An adapter as this node runs it: its state, its loopback endpoint, why it is in error.

    Each node runs its own adapter of every adapter worker; the store's record of the
    worker is whatever node wrote last, so a node sends to (and waits on) its own.
    """

    state: WorkerState
    endpoint: str = ""
    error: str = ""


def build_targets(
    loaded: Sequence[LoadedWorker],
    records: Sequence[WorkerRecord],
    *,
    keys: Mapping[str, str],
    held: Mapping[str, str] | None = None,
    local: Mapping[str, LocalWorker] | None = None,
) -> dict[str, Target]:
    """Every registered worker's target; ``keys`` holds keys known only at run time,
    ``held`` why a worker's tasks wait while serve restarts it, ``local`` this node's
    adapters (an adapter worker not in it does not run here: offline)."""
    by_name = {w.name: w for w in loaded}
    targets = {}
    for stored in records:
        record = stored
        if stored.kind is WorkerKind.ADAPTER and local is not None:
            here = local.get(stored.name, LocalWorker(WorkerState.OFFLINE))
            record = replace(stored, state=here.state, endpoint=here.endpoint, error=here.error)
        worker = by_name.get(record.name)
        target = _target(record, worker, keys.get(record.name, ""))
        why = held.get(record.name, "") if held else ""
        targets[record.name] = replace(target, waiting=why) if why else target
    return targets


def _target(record: WorkerRecord, worker: LoadedWorker | None, key: str) -> Target:
    if worker is None or worker.spec is None:
        why = worker.broken if worker is not None else "it is being loaded"
        return Target(
            name=record.name, kind=record.kind, state=record.state,
            waiting=f"its definition cannot be used: {why}",
        )  # fmt: skip
    spec = worker.spec
    endpoint = spec.endpoint if record.kind is WorkerKind.UNMANAGED else record.endpoint
    if not key and spec.docker is not None:
        key = spec.docker.api_key
    disposable = spec.docker is not None and spec.docker.lifecycle == "disposable"
    return Target(
        name=record.name, kind=record.kind, state=record.state, endpoint=endpoint,
        api_key=key, timeout=spec.timeout_seconds, concurrency=spec.concurrency,
        max_retries=spec.max_retries, rate=spec.rate_limit.per_second,
        burst=spec.rate_limit.burst, disposable=disposable, definition=worker.fingerprint,
        waiting="" if disposable else _waiting(record, endpoint),
        budget=spec.budget.value() if spec.budget is not None else None,
        max_output=spec.adapter.max_tokens if spec.adapter is not None else 0,
    )  # fmt: skip


def _waiting(record: WorkerRecord, endpoint: str) -> str:
    if record.state is WorkerState.OFFLINE:
        if record.kind is WorkerKind.ADAPTER:
            return "the adapter is not running (mecha serve starts it)"
        return f"worker is offline; start it with `mecha worker start {record.name}`"
    if record.state is WorkerState.ERROR:
        return f"worker is in error ({record.error or 'health check failed'}); waiting to recover"
    if not endpoint:
        return "worker has no endpoint yet"
    return ""
