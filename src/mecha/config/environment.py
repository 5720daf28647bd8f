"""``MECHA_*`` variables: config.yml's server settings given by the environment (containers).

Each setting has one, named after its key: ``MECHA_`` and the key's path in capitals,
joined by ``_``: ``addr`` → ``MECHA_ADDR``, ``dispatch: concurrency:`` →
``MECHA_DISPATCH_CONCURRENCY``, ``budget: budget_wait:`` → ``MECHA_BUDGET_BUDGET_WAIT``.
``MECHA_RETENTION`` sets every kind's retention at once, as ``retention: 7`` does (a
kind's own variable wins over it). Older and upstream names are read too (``ALIASES``:
``GITHUB_API_URL``, ``MECHA_LEASE``, ``MECHA_DRAIN_TIMEOUT``); one set beside its regular
name to another value is a mistake. An empty variable counts as unset.

Not here: ``MECHA_DATABASE_URL`` is read where the database is chosen
(``mecha.config.database``), so that every command takes it, not only serve; ``sources:``
(named webhook sources, several keys each) and ``database_password:`` (a reference into
secrets.yml) are config.yml's only.

Precedence: flag, then environment, then file, then default. ``resolve_server`` is the one
place that computes it: the variables' values are laid over the file's in one document,
which config.yml's own checks read (``check_config``: same units, bounds and messages),
each mistake located at its variable (``MECHA_DISPATCH_CONCURRENCY="x"``) or at
file:line:column; then serve's flags are laid over that. The result says where each
setting came from (``ServerConfig.origins``). Pure: text and a mapping in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mecha.config.budget import BUDGET_KEYS
from mecha.config.retention import RETENTION_KINDS
from mecha.config.server_file import (
    API_KEY_HINT,
    DISPATCH_KEYS,
    WRITEBACK_KEYS,
    ConfigFileError,
    ServerConfig,
    addr_problem,
    api_key_problem,
    check_config,
)
from mecha.errors import Location, Problem, UsageError
from mecha.yaml_doc import Document, Path

#: how a mistake's place names the environment when grouping problems by file
ENVIRONMENT = "the environment"
#: texts taken as given; every other variable is read as a YAML scalar is (12, 0.5, true)
_TEXT_KEYS = ("addr", "api_key", "github_api_url")
_SECRET_KEYS = ("api_key",)
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class Variable:
    """One ``MECHA_*`` variable and the config.yml key it sets."""

    name: str
    path: tuple[str, ...]

    @property
    def key(self) -> str:
        """The dotted key: ``dispatch.concurrency``."""
        return ".".join(self.path)


def _variables() -> tuple[Variable, ...]:
    paths: list[tuple[str, ...]] = [("addr",), ("api_key",), ("github_api_url",)]
    paths += [("max_diff",), ("max_result",)]
    paths += [("dispatch", key) for key in DISPATCH_KEYS]
    paths += [("writeback", key) for key in WRITEBACK_KEYS]
    paths += [("retention",)] + [("retention", key) for key in (*RETENTION_KINDS, "interval")]
    paths += [("budget", key) for key in BUDGET_KEYS]
    return tuple(Variable("MECHA_" + "_".join(path).upper(), path) for path in paths)


#: every variable, in config.yml's order (``MECHA_RETENTION`` before the kinds' own)
VARIABLES = _variables()
#: older or upstream names read as well: upstream's GITHUB_API_URL, and the two variables
#: Mecha read before the regular scheme
ALIASES = {
    "MECHA_GITHUB_API_URL": "GITHUB_API_URL",
    "MECHA_DISPATCH_LEASE": "MECHA_LEASE",
    "MECHA_DISPATCH_DRAIN_TIMEOUT": "MECHA_DRAIN_TIMEOUT",
}


@dataclass(frozen=True, slots=True)
class Outside(Location):
    """A value's place outside the file: a variable (shown with what it was set to, unless
    it is secret) or a flag."""

    name: str = ""
    value: str = ""

    def __str__(self) -> str:
        if not self.value:
            return self.name
        shown = self.value if len(self.value) <= 60 else self.value[:57] + "..."
        return f'{self.name}="{shown}"'


class SettingsError(ConfigFileError):
    """config.yml or the MECHA_* variables have mistakes (each located)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        files = sorted({p.location.file for p in self.problems}, key=lambda f: f == ENVIRONMENT)
        if len(files) > 1:
            self.message = self.message.replace(
                f"in {len(files)} files:", f"in {' and '.join(files)}:", 1
            )
            self.args = (self.message,)


@dataclass(frozen=True)
class Given:
    """One value the environment gives: the variable that gave it and the value as YAML
    would have read it."""

    variable: str
    path: tuple[str, ...]
    value: Any
    place: Outside


def read_environment(environ: Mapping[str, str]) -> tuple[list[Given], list[Problem]]:
    """The values the ``MECHA_*`` variables set, in the order they apply; and the aliases
    set beside their regular name to another value."""
    given: list[Given] = []
    problems: list[Problem] = []
    for variable in VARIABLES:
        name, text = variable.name, environ.get(variable.name, "")
        alias = ALIASES.get(name, "")
        if alias and environ.get(alias, ""):
            if text and environ[alias] != text:
                where = Outside(ENVIRONMENT, 0, 0, name=f"{alias} and {name}")
                hint = f"keep one ({name} is the name Mecha documents)"
                problems.append(Problem(where, "both are set, to different values", hint))
                continue
            name, text = alias, environ[alias]
        if not text:
            continue
        secret = variable.path[-1] in _SECRET_KEYS
        place = Outside(ENVIRONMENT, 0, 0, name=name, value="" if secret else text)
        value = text if variable.path[-1] in _TEXT_KEYS else _scalar(text)
        if secret:  # the key as set: config.yml's ${...} expansion must leave it whole
            value = text.replace("$", "$$")
        if variable.path == ("retention",):  # every kind, as `retention: 7` does
            given += [Given(name, ("retention", kind), value, place) for kind in RETENTION_KINDS]
        else:
            given.append(Given(name, variable.path, value, place))
    return given, problems


def _scalar(text: str) -> Any:
    """A variable's text as a YAML scalar reads: a whole number, a number, true/false, or
    text, so that the file's checks (and their units) apply to it unchanged."""
    stripped = text.strip()
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return float(stripped)
    if stripped in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return stripped.lower() == "true"
    return text


def resolve_server(
    doc: Document,
    environ: Mapping[str, str],
    *,
    shown_file: str,
    flags: Mapping[str, str | None] | None = None,
) -> ServerConfig:
    """config.yml's ``doc`` with the environment's values over it and ``flags`` (serve's
    ``addr`` and ``api_key``) over both; SettingsError listing every mistake (UsageError
    for a flag's). Each setting given says where it came from, ``shown_file`` naming the
    file."""
    given, problems = read_environment(environ)
    merged, outside = _overlay(doc, given)
    try:
        config = check_config(merged, environ, outside=frozenset(outside))
    except ConfigFileError as exc:
        raise SettingsError([*problems, *exc.problems]) from None
    if problems:
        raise SettingsError(problems)
    origins = _file_origins(doc, config, shown_file)
    origins.update({".".join(g.path): f"env {g.variable}" for g in given})
    return _with_flags(replace(config, origins=origins), flags or {})


def _overlay(doc: Document, given: list[Given]) -> tuple[Document, dict[Path, Outside]]:
    """``doc`` with ``given`` laid over it; a section the file wrote as other than a
    mapping is left as it is (its mistake is reported), ``retention: 7`` becomes a mapping."""
    if doc.data is not None and not isinstance(doc.data, dict):
        return doc, {}
    data: dict[str, Any] = dict(doc.data or {})
    outside: dict[Path, Outside] = {}
    for item in given:
        head, *rest = item.path
        if not rest:
            data[head] = item.value
        else:
            section = data.get(head)
            if head == "retention" and _is_scalar(section):
                section = dict.fromkeys(RETENTION_KINDS, section)
            if section is None:
                section = {}
            if not isinstance(section, dict):
                continue
            data[head] = {**section, rest[0]: item.value}
        outside[item.path] = item.place
    merged = Document(
        data=data, file=doc.file, keys={**doc.keys, **outside}, values={**doc.values, **outside}
    )
    return merged, outside


def _is_scalar(value: Any) -> bool:
    return value is not None and not isinstance(value, dict | list)


def _file_origins(doc: Document, config: ServerConfig, shown_file: str) -> dict[str, str]:
    """``config.yml:LINE`` for each setting the file itself gives."""
    data = doc.data if isinstance(doc.data, dict) else {}
    origins: dict[str, str] = {}
    for variable in VARIABLES:
        head, *rest = variable.path
        if head not in data:
            continue
        section = data[head]
        found = not rest or (isinstance(section, dict) and rest[0] in section)
        if head == "retention" and rest and _is_scalar(section):
            found = rest[0] in RETENTION_KINDS  # `retention: 7` gives every kind
        if found and variable.path != ("retention",):
            origins[variable.key] = f"{shown_file}:{doc.where(variable.path).line}"
    for name in config.sources:
        origins[f"sources.{name}"] = f"{shown_file}:{doc.where(('sources', name), key=True).line}"
    return origins


def _with_flags(config: ServerConfig, flags: Mapping[str, str | None]) -> ServerConfig:
    """``config`` with serve's ``--addr`` and ``--api-key`` over it, checked as the file's."""
    addr, key = flags.get("addr"), flags.get("api_key")
    origins = dict(config.origins)
    if addr is not None:
        if problem := addr_problem(addr):
            raise UsageError(f"address {problem}", hint="e.g. 127.0.0.1:21212 or :21212")
        config, origins["addr"] = replace(config, addr=addr), "flag --addr"
    if key is not None:
        if problem := api_key_problem(key):
            raise UsageError(f"--api-key {problem}", hint=API_KEY_HINT)
        config, origins["api_key"] = replace(config, api_key=key), "flag --api-key"
    return replace(config, origins=origins)
