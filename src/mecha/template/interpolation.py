"""``${VAR}`` in worker files: environment variables substituted into chosen fields.

Forms: ``${NAME}`` (an unset NAME is an error that names it), ``${NAME:-fallback}`` (the
fallback when NAME is unset or empty) and ``$$`` for a literal dollar sign. A bare
``$NAME`` is left alone, so values that happen to contain a dollar sign keep it.
Takes text and a mapping, does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UnsetVariable(ValueError):
    """A ``${NAME}`` whose NAME is not set in the environment."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"environment variable {name} is not set")


def referenced(text: str) -> set[str]:
    """The variable names ``text`` refers to with ``${NAME}`` or ``${NAME:-fallback}``."""
    return {m.group(1).partition(":-")[0] for m in _TOKEN.finditer(text) if m.group(0) != "$$"}


def has_reference(text: str) -> bool:
    """Whether ``text`` contains a ``${...}`` to substitute."""
    return any(m.group(0) != "$$" for m in _TOKEN.finditer(text))


def expand(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with every ``${...}`` substituted; UnsetVariable or ValueError if one cannot be."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        inner = match.group(1)
        name, has_fallback, fallback = inner.partition(":-")
        if not _NAME.match(name):
            raise ValueError(
                f'"${{{inner}}}" is not a variable reference; write ${{NAME}} with letters, '
                "digits and _ (or $$ for a literal dollar sign)"
            )
        value = environ.get(name)
        if value is not None and (value or not has_fallback):
            return value
        if has_fallback:
            return fallback
        raise UnsetVariable(name)

    return _TOKEN.sub(substitute, text)
