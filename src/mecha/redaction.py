"""Masking secrets in text: known values and the token shapes that look like credentials.

``Redactor.redact`` replaces every value it was given (the secrets file's values, worker
api keys) and every known token shape (§15: ``sk-ant-…``, ``sk-`` + 20, ``ghp_``…,
``github_pat_``, ``AIza`` + 30, ``ya29.``, ``glpat-``…, ``xoxb-``…, ``Bearer <token>``)
with ``[REDACTED]``. ``RedactingFilter`` applies one to every log record a handler emits.
Takes text, does no I/O; fast enough to run on every log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Protocol

REDACTED = "[REDACTED]"
#: values shorter than this are not masked: they would turn ordinary words into noise
MIN_LENGTH = 4

_BODY = r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*"  # token characters, dots only inside
_PREFIXED = (
    "sk-ant-",
    *("ghp_", "ghs_", "ghr_", "gho_", "ghu_", "ghes_", "github_pat_"),
    *("glpat-", "gloas-", "glrt-", "gldt-", "xoxb-", "xoxp-", "ya29."),
)
_SHAPES = [
    *(re.escape(prefix) + _BODY for prefix in _PREFIXED),
    r"sk-[A-Za-z0-9_\-]{20,}",
    r"AIza[A-Za-z0-9_\-]{30,}",
]
#: the lookahead lets the scanner skip, cheaply, every position no shape can start at;
#: the lookbehind keeps ``task-ant-…`` or ``desk-…`` words whole.
_PATTERN = re.compile(
    r"(?=[sgxyAbB])(?:(?<![A-Za-z0-9])(?:"
    + "|".join(_SHAPES)
    + r")|(?P<bearer>(?<![A-Za-z0-9])[Bb]earer[ \t]+)[A-Za-z0-9\-._~+/]+=*)"
)
_REPLACEMENT = r"\g<bearer>" + REDACTED
#: what a token starts with: the prefixed shapes plus the bare ``sk-`` and ``AIza`` ones
TOKEN_PREFIXES = (*_PREFIXED, "sk-", "AIza")
#: every shape's text holds one of these: a text with none needs no scan by the pattern
#: (``in`` is a fast substring search; the pattern's scan costs ~30 ms a megabyte)
_CLUES = (*(p for p in _PREFIXED if not p.startswith("sk-")), "sk-", "AIza", "earer")

#: stands in for a masked value until the end, so no later value or shape matches inside
_MARK = "\ue000"


class Redacts(Protocol):
    """Anything that masks secrets in a text (a ``Redactor``, a ``KnownSecrets``)."""

    def redact(self, text: str) -> str:
        """``text`` with every secret masked."""
        ...


class Redactor:
    """Masks a fixed set of values and the known token shapes; immutable."""

    __slots__ = ("_values",)
    _values: tuple[str, ...]

    def __init__(self, values: Iterable[str] = ()) -> None:
        kept = {value for value in values if len(value) >= MIN_LENGTH}
        # longest first, so a value that contains another is masked whole
        object.__setattr__(self, "_values", tuple(sorted(kept, key=lambda v: (-len(v), v))))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Redactor is immutable; use with_values() ({name})")

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values)"

    def with_values(self, values: Iterable[str]) -> Redactor:
        """A new redactor masking these values as well as the present ones."""
        return Redactor((*self._values, *values))

    def redact(self, text: str) -> str:
        """``text`` with every known value and token shape replaced by ``[REDACTED]``."""
        present = [value for value in self._values if value in text]
        for value in present:
            text = text.replace(value, _MARK)
        if any(clue in text for clue in _CLUES):
            text = _PATTERN.sub(_REPLACEMENT, text)
        return text.replace(_MARK, REDACTED) if present else text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message and traceback text.

    Attach it to handlers (a logger's own filters do not see records from its children).
    Replace ``redactor`` when the secrets are reloaded.
    """

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self.redactor = redactor if redactor is not None else Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the formatted message (args merged in), the traceback and stack text."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # args that do not fit the format: keep both
            message = f"{record.msg} {record.args!r}"
        record.msg = self.redactor.redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


def looks_like_token(text: str) -> bool:
    """Whether ``text`` holds a known token shape (``sk-…``, ``ghp_…``, ``Bearer …``)."""
    return _PATTERN.search(text) is not None
