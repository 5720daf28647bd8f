"""What a forge's write-back client offers the engine: ``Writer``, ``Done``, ``WriteFailure``.

``Writer.write(write, uncertain=...)`` makes one ``Write`` happen on the forge and says
what it did. It must be safe to call again for a write that may already have happened
(``uncertain=True``: an earlier attempt started and its outcome is unknown, e.g. the
process was killed mid-call): it then looks on the forge first (our marked comment or
review) and does not write a second time. Comments are sticky: the worker's one comment
on a pull request or issue is edited in place, and only if our own account wrote it.

A failure raises ``WriteFailure``: ``transient`` for 5xx, 429, GitHub's secondary rate
limit (403 with ``Retry-After`` or an exhausted ``X-RateLimit-Remaining``) and network
errors, with ``retry_after`` seconds when the forge said; otherwise the action failed for
good with the forge's own message. No message carries a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mecha.policy.writes import Write


@dataclass(frozen=True, slots=True)
class Done:
    """What a write did on the forge."""

    #: e.g. "comment 1234 created", "comment 1234 edited", "labels added: bug"
    detail: str
    #: the forge's id of what was made or edited ("" if none: labels, statuses)
    remote_id: str = ""


class WriteFailure(Exception):
    """A write did not happen; the message names the request and the forge's answer."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        status: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        #: seconds the forge asked us to wait (Retry-After, rate-limit reset), None if unsaid
        self.retry_after = retry_after
        #: the HTTP status the forge answered, 0 if it did not answer
        self.status = status


class Writer(Protocol):
    """One forge's write-back client."""

    async def write(self, write: Write, *, uncertain: bool = False) -> Done:
        """Make ``write`` happen (see the module docstring); WriteFailure if it did not."""
        ...

    def preview(self, write: Write) -> str:
        """The requests ``write`` would make: ``POST /repos/o/r/issues/7/comments``."""
        ...

    async def identity(self) -> str:
        """The login of the account Mecha writes as ("" when the forge will not say);
        WriteFailure or FetchError if the forge cannot be asked now."""
        ...
