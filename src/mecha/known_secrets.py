"""Every secret value this Mecha holds, known in one place, so no text from outside keeps one.

A model API that refuses a key often quotes it back (``Incorrect API key provided: …``); a
worker's error, a forge's answer or a result may hold one too. Token *shapes* (``ghp_…``,
``sk-…``) are masked by ``Redactor`` anyway; a key of any other shape only if its *value*
is known. ``KnownSecrets`` collects those values as Mecha learns them:

- every value in secrets.yml (at start, and again at each reload);
- the server's API key;
- each worker's resolved keys: a literal ``api_key``, one expanded from ``${VAR}``, and
  the token a ``token: backend.name`` reference resolves to (``worker_secret_values``).

It only grows: a key rotated away is still a secret wherever an old text quotes it. One
instance is shared by the store (``mecha.store.redacting``: nothing is stored unredacted),
the log handler's ``RedactingFilter``, the API and the CLI's output. Thread-safe; no I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mecha.redaction import RedactingFilter, Redactor

if TYPE_CHECKING:  # type names only: the CLI imports this at start, light
    pass


class KnownSecrets:
    """The secret values known so far and one redactor over all of them (and token shapes)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset(v for v in values if v)
        self._redactor = Redactor(self._values)
        self._filters: list[RedactingFilter] = []

    def __repr__(self) -> str:
        return f"KnownSecrets({len(self._values)} values)"

    @property
    def redactor(self) -> Redactor:
        """The redactor over every value known now (immutable: a later ``add`` makes another)."""
        return self._redactor

    def add(self, values: Iterable[str]) -> None:
        """Know these values too (empty ones are ignored); every attached filter is updated."""
        fresh = {value for value in values if value} - self._values
        if not fresh:
            return
        with self._lock:
            self._values = self._values | fresh
            self._redactor = self._redactor.with_values(fresh)
            for log_filter in self._filters:
                log_filter.redactor = self._redactor

    def attach(self, log_filter: RedactingFilter) -> None:
        """Keep ``log_filter`` on the current redactor from now on."""
        with self._lock:
            self._filters.append(log_filter)
            log_filter.redactor = self._redactor

    def redact(self, text: str) -> str:
        """``text`` with every known value and token shape masked."""
        return self._redactor.redact(text)

    def redact_data(self, value: Any) -> Any:
        """JSON-like data (dicts, lists, strings) with every string redacted; keys too."""
        return redact_data(self._redactor, value)


def redact_data(redactor: Redactor, value: Any) -> Any:
    """``value`` with every string inside (mapping keys included) passed through ``redactor``."""
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, Mapping):
        return {redact_data(redactor, k): redact_data(redactor, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(redactor, item) for item in value]
    return value
