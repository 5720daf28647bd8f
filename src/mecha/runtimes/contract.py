"""The worker contract's values, without sockets: ``WorkerFailure`` and ``Health``.

What a send or a health probe can come to, as the engine, the dispatcher's callers and
every runtime (``mecha.runtimes.endpoint``, the adapters, the managed pools) name it.
Nothing here talks to a worker: importing it opens no connection and pulls in no client.
"""

from __future__ import annotations

from enum import StrEnum

from mecha.errors import MechaError
from mecha.result import TaskResult


class Health(StrEnum):
    """What a health probe found."""

    OK = "ok"  # 200
    BUSY = "busy"  # 503 while a task runs (stock worker images answer so)
    UNHEALTHY = "unhealthy"  # any other status
    UNREACHABLE = "unreachable"  # no answer: refused, reset, timed out


class WorkerFailure(MechaError):
    """A task could not be done by its worker; ``transient`` means a retry may succeed."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        hint: str = "",
        retry_after: float | None = None,
        result: TaskResult | None = None,
        status: int = 0,
    ) -> None:
        super().__init__(message, hint=hint)
        self.transient = transient
        #: seconds the worker asked us to wait (``Retry-After``), if it said
        self.retry_after = retry_after
        #: the worker's well-formed answer when it reported a failure itself
        self.result = result
        #: the HTTP status answered (0 if there was no answer)
        self.status = status
