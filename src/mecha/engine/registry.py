"""The registered workers as the engine sees them, reloaded whenever the registry changes.

``mecha worker add/remove`` write to the store from another process; the store keeps a
version number that every such change bumps. ``refresh`` compares it and reloads only then,
so a running server picks up worker changes without a restart and without re-reading every
definition for every event. A definition that no longer checks out (its file is gone, a
variable it uses is unset) is kept as a broken entry: events it would take say why not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mecha.errors import MechaError
from mecha.matching import Candidate
from mecha.store import Store, WorkerRecord
from mecha.template import PromptTemplate, compile_template
from mecha.worker import WorkerSpec
from mecha.worker_files import from_record

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LoadedWorker:
    """One registered worker, checked and with its prompts compiled, or why it cannot run."""

    name: str
    spec: WorkerSpec | None = None
    #: one compiled prompt per event rule, in rule order
    prompts: tuple[PromptTemplate, ...] = ()
    #: why the definition cannot be used, "" if it can
    broken: str = ""
    updated_at: float = 0.0

    @property
    def candidate(self) -> Candidate:
        """What matching looks at."""
        return Candidate(name=self.name, rules=self.spec.events if self.spec else ())


@dataclass
class WorkerRegistry:
    """Loaded workers, by name; ``refresh`` keeps them in step with the store."""

    store: Store
    environ: Mapping[str, str]
    home: Path
    version: int = -1
    workers: dict[str, LoadedWorker] = field(default_factory=dict)
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
        self.workers = loaded
        self.version = version

    def _load(self, record: WorkerRecord) -> LoadedWorker:
        name = record.name
        try:
            spec = from_record(record, environ=self.environ, home=self.home).spec
            prompts = tuple(compile_template(rule.prompt) for rule in spec.events)
        except MechaError as exc:
            why = str(exc).replace("\n", " ")
            log.warning("worker %s cannot be used: %s", name, why)
            return LoadedWorker(name=name, broken=why, updated_at=record.updated_at)
        return LoadedWorker(name=name, spec=spec, prompts=prompts, updated_at=record.updated_at)
