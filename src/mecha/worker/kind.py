"""The kinds and states of workers: small, so listing workers needs no model machinery."""

from __future__ import annotations

from enum import StrEnum


class WorkerKind(StrEnum):
    """How a worker runs; inferred from which section its file has."""

    MANAGED = "managed"  # docker: a container Mecha starts
    ADAPTER = "adapter"  # adapter: an in-process bridge to Ollama or an OpenAI-style API
    UNMANAGED = "unmanaged"  # endpoint: an HTTP service the user runs

    @property
    def label(self) -> str:
        """The word upstream's CLI prints for this kind (``live`` for unmanaged)."""
        return "live" if self is WorkerKind.UNMANAGED else self.value


class WorkerState(StrEnum):
    """Where a registered worker stands; persisted so every process sees the same."""

    OFFLINE = "offline"
    ONLINE = "online"
    BUSY = "busy"
    ERROR = "error"
