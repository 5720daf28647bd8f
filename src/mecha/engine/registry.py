"""The registered workers as the engine sees them, reloaded whenever the registry changes.

``mecha worker add/remove`` write to the store from another process; the store keeps a
version number that every such change bumps. ``refresh`` compares it and reloads only then,
so a running server picks up worker changes without a restart and without re-reading every
definition for every event. A definition that no longer checks out (its file is gone, a
variable it uses is unset) is kept as a broken entry: events it would take say why not.

After the first load, every reload that added, replaced (with a different definition) or
removed a worker is reported to ``on_change`` as a ``RegistryChange``, from the thread that
reloaded: serve restarts adapters and refills warm pools from it. A state change (online,
busy) is not a change of definition and is not reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from mecha.errors import MechaError
from mecha.known_secrets import KnownSecrets
from mecha.store import Store, WorkerRecord
from mecha.template.prompt import PromptTemplate, compile_template
from mecha.worker.files import from_record
from mecha.worker.held_secrets import worker_secret_values
from mecha.worker.matching import Candidate
from mecha.worker.spec import WorkerSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LoadedWorker:
    """One registered worker, checked and with its prompts compiled, or why it cannot run."""

    name: str
    spec: WorkerSpec | None = None
    #: one compiled prompt per event rule, in rule order
    prompts: tuple[PromptTemplate, ...] = ()
    #: its compiled ``flow.key`` (None without ``flow:``)
    flow_key: PromptTemplate | None = None
    #: why the definition cannot be used, "" if it can
    broken: str = ""
    updated_at: float = 0.0
    #: when the name was registered: a worker removed and added again is a new worker
    created_at: float = 0.0
    #: a short hash of the stored definition, to tell one version from the next
    fingerprint: str = ""

    @property
    def candidate(self) -> Candidate:
        """What matching looks at."""
        if self.spec is None:
            return Candidate(name=self.name, rules=())
        return Candidate(name=self.name, rules=self.spec.events, trust=self.spec.trust)

    def same_as(self, other: LoadedWorker) -> bool:
        """Whether ``other`` is this worker with the same definition (its state aside)."""
        return self is other or (
            self.created_at == other.created_at
            and self.fingerprint == other.fingerprint
            and self.broken == other.broken
            and self.spec == other.spec
        )


@dataclass(frozen=True)
class RegistryChange:
    """What one reload changed, by worker name."""

    #: the changed and removed workers as they were
    before: Mapping[str, LoadedWorker]
    #: the added and changed workers as they are now
    after: Mapping[str, LoadedWorker]

    @property
    def added(self) -> list[str]:
        """Names registered since the last load."""
        return sorted(self.after.keys() - self.before.keys())

    @property
    def changed(self) -> list[str]:
        """Names whose definition changed (replaced, or now broken or fixed)."""
        return sorted(self.after.keys() & self.before.keys())

    @property
    def removed(self) -> list[str]:
        """Names no longer registered."""
        return sorted(self.before.keys() - self.after.keys())


@dataclass
class WorkerRegistry:
    """Loaded workers, by name; ``refresh`` keeps them in step with the store."""

    store: Store
    environ: Mapping[str, str]
    home: Path
    version: int = -1
    workers: dict[str, LoadedWorker] = field(default_factory=dict)
    #: told of every change after the first load (called with the lock held: be quick)
    on_change: Callable[[RegistryChange], None] | None = None
    #: learns each loaded worker's keys, so no text from outside keeps one
    known: KnownSecrets | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self) -> list[LoadedWorker]:
        """The workers now registered, sorted by name (blocking: run it off the event loop)."""
        with self._lock:
            version = self.store.registry_version()
            if version != self.version:
                self._reload(version)
            return [self.workers[name] for name in sorted(self.workers)]

    def _reload(self, version: int) -> None:
        loaded: dict[str, LoadedWorker] = {}
        for record in self.store.list_workers():
            known = self.workers.get(record.name)
            if known is not None and known.updated_at == record.updated_at and not known.broken:
                loaded[record.name] = known
            else:
                loaded[record.name] = self._load(record)
        log.info("worker registry: version %d, %d workers", version, len(loaded))
        before, first = self.workers, self.version == -1
        self.workers = loaded
        self.version = version
        change = _difference(before, loaded)
        if not first and self.on_change is not None and (change.before or change.after):
            self.on_change(change)

    def _load(self, record: WorkerRecord) -> LoadedWorker:
        name = record.name
        base = LoadedWorker(
            name=name, updated_at=record.updated_at, created_at=record.created_at,
            fingerprint=fingerprint(record),
        )  # fmt: skip
        try:
            spec = from_record(record, environ=self.environ, home=self.home).spec
            prompts = tuple(compile_template(rule.prompt) for rule in spec.events)
            flow_key = compile_template(spec.flow.key) if spec.flow is not None else None
        except MechaError as exc:
            why = str(exc).replace("\n", " ")
            log.warning("worker %s cannot be used: %s", name, why)
            return replace(base, broken=why)
        if self.known is not None:
            self.known.add(worker_secret_values(spec))
        return replace(base, spec=spec, prompts=prompts, flow_key=flow_key)


def fingerprint(record: WorkerRecord) -> str:
    """Eight hex digits that change when the stored definition (or its kind) does."""
    text = json.dumps([record.kind.value, record.definition], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _difference(
    before: Mapping[str, LoadedWorker], after: Mapping[str, LoadedWorker]
) -> RegistryChange:
    was, now = {}, {}
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            was[name] = old
        elif not old.same_as(new):
            was[name], now[name] = old, new
    now.update({name: new for name, new in after.items() if name not in before})
    return RegistryChange(before=was, after=now)
