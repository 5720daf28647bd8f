"""``~/.mecha/config.yml``: the server's settings file (pure: text in, ServerConfig out).

::

    addr: 127.0.0.1:21212          # where `mecha serve` listens
    api_key: ${MECHA_API_KEY}      # opens the API beyond loopback; ${VAR} is expanded;
                                   # at least 16 characters (MIN_API_KEY)
    github_api_url: https://api.github.com   # GitHub Enterprise: https://HOST/api/v3
    max_diff: 500KB                # hydrated diffs are cut here (bytes, KB or MB)
    max_result: 1MB                # a task's stored result is cut here (at least 10KB)
    sources:                       # generic webhook sources (see mecha.config.sources)
      alerts: {type_header: X-Event-Type, auth: hmac, signature_header: X-Signature}
    dispatch:                      # sending tasks to workers (all optional)
      concurrency: 16              # tasks in flight at once, over all workers
      retry_base: 30s              # first retry after a transient failure; doubles each time
      retry_cap: 30m               # longest wait between retries (Retry-After too)
      health_interval: 15s         # how often running workers' /health is asked
      poll_interval: 1s            # how often the store is read for tasks made elsewhere
      drain_timeout: 10m           # how long a stop waits for tasks in flight
    writeback:                     # writing results to GitHub / GitLab (all optional)
      attempts: 5                  # tries of one write before it is dead-lettered
      retry_base: 2s               # first retry after a 5xx / 429 / rate limit; doubles
      retry_cap: 10m               # longest wait between tries (Retry-After too)
      concurrency: 4               # forge calls in flight at once
    database_url: postgresql://mecha@db:5432/mecha   # PostgreSQL instead of SQLite
    database_password: postgres.main  # (MECHA_DATABASE_URL wins; see mecha.config.database)
    retention:                     # how long finished work is kept (days; 12h or 30d;
      events: 30                   # off or 0 = for ever); `retention: off` keeps all,
      tasks: 30                    # `retention: 7` keeps 7 days of each
      timeline: 30
      writes: 30
      interval: 10m                # how often serve prunes (in small batches)
    budget:                        # all workers together (mecha.config.budget; each
      tokens_per_day: 1000000      # worker file may add its own budget: too)
      tasks_per_hour: 200

Every mistake is reported at once, at file:line:column, with what to do. Each setting
but ``sources`` and ``database_password`` has a ``MECHA_*`` variable too, which wins
over the file (``mecha.config.environment``): ``check_config`` checks a document whose
values came from both, each located where it was given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mecha.budget import Budget
from mecha.config.budget import check_budget
from mecha.config.database import DatabaseKeys, check_keys
from mecha.config.retention import KEEP_HINT, RETENTION_KINDS, Retention, keep_seconds
from mecha.config.sources import RESERVED_SOURCES, GenericSource, SourceAuth
from mecha.duration import duration_value
from mecha.errors import ConfigError, FileError, Problem
from mecha.numbers import whole
from mecha.result_cap import DEFAULT_MAX_RESULT, MIN_MAX_RESULT
from mecha.template.interpolation import UnsetVariable, expand, has_reference
from mecha.yaml_doc import Document, Path, load_yaml, suggest_key

DEFAULT_ADDR = "127.0.0.1:21212"
DEFAULT_MAX_DIFF = 500_000
DEFAULT_GITHUB_API_URL = "https://api.github.com"
_KEYS = (
    "addr", "api_key", "github_api_url", "max_diff", "max_result", "sources", "dispatch",
    "writeback", "retention", "database_url", "database_password", "budget",
)  # fmt: skip
#: dispatch settings: durations, except concurrency (a count)
DISPATCH_KEYS = (
    "concurrency",
    "retry_base",
    "retry_cap",
    "health_interval",
    "poll_interval",
    "drain_timeout",
    "lease",
)
#: write-back settings: durations, except attempts and concurrency (counts)
WRITEBACK_KEYS = ("attempts", "retry_base", "retry_cap", "concurrency")
_COUNTS = {"concurrency": 1024, "attempts": 100}
_SOURCE_KEYS = tuple(f.name for f in fields(GenericSource) if f.name != "name")
_SIZE = re.compile(r"(\d+)\s*(B|KB|MB|KiB|MiB)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000_000, "kib": 1024, "mib": 1024 * 1024}
_SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class ConfigFileError(FileError, ConfigError):
    """config.yml has mistakes."""


#: the fewest characters an API key may have: a shorter one can be guessed by trying
MIN_API_KEY = 16
API_KEY_HINT = "generate one with: openssl rand -hex 24"


def api_key_problem(key: str) -> str:
    """What is wrong with ``key`` as the server's API key ("" if nothing), without showing it."""
    if not key.strip():
        return "is blank"
    if len(key) < MIN_API_KEY:
        return (
            f"is {len(key)} characters; an API key needs at least {MIN_API_KEY} so that it "
            "cannot be guessed by trying keys against the API"
        )
    return ""


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """What config.yml says; every field has a default, so an absent file is fine."""

    addr: str = ""
    api_key: str = field(default="", repr=False)
    #: the file's own text holds (part of) the key, not only ${VAR} references: the file
    #: must then be private, as secrets.yml is
    api_key_literal: bool = False
    github_api_url: str = DEFAULT_GITHUB_API_URL
    max_diff: int = DEFAULT_MAX_DIFF
    #: the most bytes of a task's result that are stored
    max_result: int = DEFAULT_MAX_RESULT
    sources: Mapping[str, GenericSource] = field(default_factory=dict)
    #: dispatch settings given (seconds, or a count for concurrency); absent ones default
    dispatch: Mapping[str, float] = field(default_factory=dict)
    #: write-back settings given, likewise
    writeback: Mapping[str, float] = field(default_factory=dict)
    retention: Retention = field(default_factory=Retention)
    #: database_url and database_password (the database itself: mecha.config.database)
    database: DatabaseKeys = field(default_factory=DatabaseKeys)
    #: what all workers together may use (None: no global budget)
    budget: Budget | None = None
    #: where each setting given came from, by dotted key (``dispatch.concurrency``):
    #: ``env MECHA_ADDR``, ``flag --addr`` or ``~/.mecha/config.yml:4``; absent = default
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)


def parse_config(text: str, *, file: str, environ: Mapping[str, str]) -> ServerConfig:
    """The settings in ``text``; ConfigFileError listing every mistake."""
    return check_config(load_yaml(text, file=file), environ)


def check_config(
    doc: Document, environ: Mapping[str, str], *, outside: frozenset[Path] = frozenset()
) -> ServerConfig:
    """The settings ``doc`` holds; ConfigFileError listing every mistake. ``outside``: the
    paths whose values came from elsewhere than the file's text (the environment)."""
    if doc.data is None:
        return ServerConfig()
    check = _Checker(doc, environ)
    if not isinstance(doc.data, dict):
        check.add((), "config.yml must be a mapping of key: value lines", "e.g. addr: :21212")
        raise ConfigFileError(check.problems)
    data = check.known((), doc.data, _KEYS)
    api_key = check.api_key(data.get("api_key"))
    config = ServerConfig(
        addr=check.addr(data.get("addr")),
        api_key=api_key,
        api_key_literal=bool(api_key)
        and ("api_key",) not in outside
        and _literal(data.get("api_key")),
        github_api_url=check.url(("github_api_url",), data.get("github_api_url")),
        max_diff=check.size(("max_diff",), data.get("max_diff", DEFAULT_MAX_DIFF)),
        max_result=check.max_result(data.get("max_result", DEFAULT_MAX_RESULT)),
        sources=check.sources(data.get("sources")),
        dispatch=check.settings("dispatch", data.get("dispatch"), DISPATCH_KEYS),
        writeback=check.settings("writeback", data.get("writeback"), WRITEBACK_KEYS),
        retention=check.retention(data.get("retention", {})),
        database=check.database(data),
        budget=check.budget(data),
    )
    if check.problems:
        raise ConfigFileError(check.problems)
    return config


def _literal(value: Any) -> bool:
    """Whether ``api_key``'s text gives a key without the environment (a literal or a
    ``${VAR:-fallback}``), so that whoever reads the file reads the key."""
    try:
        return isinstance(value, str) and bool(expand(value, {}))
    except (UnsetVariable, ValueError):
        return False


def addr_problem(text: str) -> str:
    """What is wrong with ``text`` as ``host:port`` ("" if nothing)."""
    _host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        return f'"{text}" is not host:port'
    return ""


def parse_size(text: str | int) -> int:
    """Bytes in ``500KB``, ``2MB``, ``1MiB`` or a plain number; ValueError if not a size."""
    text = whole(text)  # 500000.0 is 500000 bytes
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a size")
    return int(match[1]) * _UNITS[(match[2] or "").lower()]


class _Checker:
    def __init__(self, doc: Document, environ: Mapping[str, str]) -> None:
        self.doc = doc
        self.environ = environ
        self.problems: list[Problem] = []

    def add(self, path: Path, message: str, hint: str, *, key: bool = False) -> None:
        self.problems.append(Problem(self.doc.where(path, key=key), message, hint))

    def known(self, path: Path, data: dict[str, Any], valid: tuple[str, ...]) -> dict[str, Any]:
        for key in data:
            if key not in valid:
                self.add(
                    (*path, key), f'unknown key "{key}"', suggest_key(str(key), valid), key=True
                )
        return {key: value for key, value in data.items() if key in valid}

    def text(self, path: Path, value: Any, *, expand_vars: bool = False) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.add(path, f"{path[-1]} must be text", 'quote it: "…"')
            return ""
        if not expand_vars:
            return value
        try:
            return expand(value, self.environ)
        except UnsetVariable as exc:
            self.add(path, f"{path[-1]} uses ${{{exc.name}}}, which is not set", "export it")
        except ValueError as exc:
            self.add(path, f"{path[-1]}: {exc}", "write ${NAME}, ${NAME:-fallback} or $$")
        return ""

    def addr(self, value: Any) -> str:
        addr = self.text(("addr",), value)
        if addr and (problem := addr_problem(addr)):
            self.add(("addr",), f"address {problem}", "e.g. 127.0.0.1:21212, or :21212 for every "
                     "interface")  # fmt: skip
            return ""
        return addr

    def api_key(self, value: Any) -> str:
        """``api_key``, expanded; "" (no key) if absent or empty; a blank or short key is a
        problem."""
        key = self.text(("api_key",), value, expand_vars=True)
        problem = api_key_problem(key) if key else ""  # empty: no key, as if absent
        if problem:
            expanded = " (after expanding ${...})" if has_reference(str(value)) else ""
            self.add(("api_key",), f"api_key{expanded} {problem}", API_KEY_HINT)
            return ""
        return key

    def url(self, path: Path, value: Any) -> str:
        url = self.text(path, value).rstrip("/")
        if value is not None and not url.startswith(("http://", "https://")):
            self.add(path, f"{path[-1]} must be an http(s) URL", "e.g. https://api.github.com")
        return url or DEFAULT_GITHUB_API_URL

    def size(self, path: Path, value: Any) -> int:
        try:
            size = parse_size(value)
        except ValueError:
            size = -1
        if size <= 0 or isinstance(value, bool):
            self.add(path, f"{path[-1]} must be a positive size", "e.g. 500KB or 2MB")
            return DEFAULT_MAX_DIFF
        return size

    def max_result(self, value: Any) -> int:
        try:
            size = -1 if isinstance(value, bool) else parse_size(value)
        except ValueError:
            size = -1
        if size < MIN_MAX_RESULT:
            shown = f"{value!r}" if isinstance(value, str) else str(value)
            self.add(
                ("max_result",), f"max_result is {shown}; it must be a size of at least 10KB",
                "e.g. max_result: 1MB (a stored result is cut to this many bytes)",
            )  # fmt: skip
            return DEFAULT_MAX_RESULT
        return size

    def retention(self, value: Any) -> Retention:
        """``retention:``: off, a number of days for every kind, or a mapping of kinds."""
        if value is None or value == {}:
            return Retention()
        if isinstance(value, list):
            self.add(
                ("retention",), "retention is a list; it must be off, a number of days, or a "
                f"mapping of {', '.join(RETENTION_KINDS)} and interval",
                "e.g. retention: {events: 30, timeline: 7}",
            )  # fmt: skip
            return Retention()
        if not isinstance(value, dict):
            keep = self.keep(("retention",), value, "retention")
            return Retention(**dict.fromkeys(RETENTION_KINDS, keep))
        data = self.known(("retention",), value, (*RETENTION_KINDS, "interval"))
        found: dict[str, Any] = {
            kind: self.keep(("retention", kind), data[kind], f"retention.{kind}")
            for kind in RETENTION_KINDS
            if kind in data
        }
        if "interval" in data:
            seconds = duration_value(data["interval"])
            if seconds is None or seconds < 1:
                self.add(
                    ("retention", "interval"),
                    f"retention.interval is {data['interval']!r}; it must be a duration of "
                    "at least 1s", "e.g. interval: 10m (how often serve prunes)",
                )  # fmt: skip
            else:
                found["interval"] = seconds
        return Retention(**found)

    def database(self, data: dict[str, Any]) -> DatabaseKeys:
        keys, problems = check_keys(self.doc, data, self.environ)
        self.problems += problems
        return keys

    def budget(self, data: dict[str, Any]) -> Budget | None:
        budget, problems = check_budget(self.doc, data)
        self.problems += problems
        return budget

    def keep(self, path: Path, value: Any, name: str) -> float | None:
        seconds, problem = keep_seconds(value)
        if problem:
            self.add(path, f"{name} {problem}", KEEP_HINT)
        return seconds

    def settings(self, name: str, value: Any, keys: tuple[str, ...]) -> dict[str, float]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add((name,), f"{name} must be a mapping", f"e.g. {name}: {{concurrency: 8}}")
            return {}
        found: dict[str, float] = {}
        for key, item in self.known((name,), value, keys).items():
            path: Path = (name, key)
            if key in _COUNTS:
                top, count = _COUNTS[key], whole(item)  # 16.0 is 16, as upstream read it
                if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= top:
                    self.add(path, f"{key} must be a whole number from 1 to {top}", "e.g. 16")
                else:
                    found[key] = count
                continue
            seconds = duration_value(item)
            if seconds is None or seconds <= 0:
                self.add(path, f"{key} must be a positive duration", "e.g. 30s, 2m or 0.5")
            else:
                found[key] = seconds
        return found

    def sources(self, value: Any) -> dict[str, GenericSource]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(("sources",), "sources must be a mapping of name: settings", "see docs")
            return {}
        found = {}
        for name, settings in value.items():
            source = self.source(str(name), settings)
            if source is not None:
                found[source.name] = source
        return found

    def source(self, name: str, settings: Any) -> GenericSource | None:
        path: Path = ("sources", name)
        if name in RESERVED_SOURCES or not _SOURCE_NAME.fullmatch(name):
            why = "is built in" if name in RESERVED_SOURCES else "may hold only a-z, 0-9, _ and -"
            self.add(path, f'source name "{name}" {why}', "choose another name", key=True)
            return None
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            self.add(path, f"sources.{name} must be a mapping", "e.g. {auth: hmac}")
            return None
        data = self.known(path, settings, _SOURCE_KEYS)
        options = {key: self.text((*path, key), val) for key, val in data.items()}
        if "auth" in options and options["auth"] not in SourceAuth.__members__.values():
            self.add((*path, "auth"), f'auth "{options["auth"]}" is unknown', "hmac or api_key")
            return None
        auth = SourceAuth(options.pop("auth", SourceAuth.HMAC))
        return GenericSource(name=name, auth=auth, **options)
