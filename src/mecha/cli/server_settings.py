"""``mecha config --server``: the server's settings as serve would resolve them, and where
each came from (``env MECHA_ADDR``, ``~/.mecha/config.yml:4``, ``default``).

Reads config.yml, the environment and (for a database password reference) secrets.yml;
opens no store. Secrets are masked: the API key and any database password show as
``[REDACTED]``, and every line passes through the CLI's redactor besides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from mecha.budget import DEFAULT_BUDGET_WAIT, DEFAULT_PER_TASK
from mecha.config.database import URL_VARIABLE
from mecha.config.environment import ALIASES, VARIABLES
from mecha.config.retention import DAY
from mecha.config.server_file import DEFAULT_ADDR, ServerConfig
from mecha.config.sources import GenericSource
from mecha.duration import format_duration
from mecha.redaction import REDACTED

if TYPE_CHECKING:
    from mecha.cli.context import AppContext
    from mecha.config.database import Database

DEFAULT = "default"


@dataclass(frozen=True)
class Row:
    """One setting: its config.yml key, its value as shown, where it came from, and the
    variable that would set it ("" if none)."""

    setting: str
    value: str
    source: str
    variable: str


def server_rows(app: AppContext) -> list[Row]:
    """Every server setting, resolved (flags aside: they are serve's), secrets masked."""
    from mecha.config.settings import load_server_config

    config = load_server_config(app.settings, app.environ)
    app.known.add({config.api_key})
    rows = [_row(config, v.key, v.name) for v in VARIABLES if v.path != ("retention",)]
    rows += [
        Row(f"sources.{name}", _source(source), config.origins[f"sources.{name}"], "")
        for name, source in sorted(config.sources.items())
    ]
    return rows + _database_rows(app)


def _row(config: ServerConfig, key: str, variable: str) -> Row:
    source = config.origins.get(key, DEFAULT)
    if alias := ALIASES.get(variable):
        variable = f"{variable} ({alias})"
    elif key.startswith("retention.") and key != "retention.interval":
        variable = f"{variable} (MECHA_RETENTION)"
    return Row(key, _value(config, key), source, variable)


def _value(config: ServerConfig, key: str) -> str:
    section, _, name = key.partition(".")
    if section in ("dispatch", "writeback"):
        return _engine(config, section, name)
    if section == "retention":
        retention = config.retention
        return (
            format_duration(retention.interval)
            if name == "interval"
            else _kept(retention.kept(name))
        )
    if section == "budget":
        return _budget(config, name)
    if key in ("max_diff", "max_result"):
        return _size(getattr(config, key))
    if key == "api_key":
        return REDACTED if config.api_key else "(none: the API answers on loopback only)"
    return config.addr or DEFAULT_ADDR if key == "addr" else config.github_api_url


def _engine(config: ServerConfig, section: str, name: str) -> str:
    """A dispatch: or writeback: setting, the engine's default where none is given."""
    from mecha.engine.dispatch_settings import DispatchSettings
    from mecha.engine.write_tries import WriteBackSettings

    given = config.dispatch if section == "dispatch" else config.writeback
    defaults = DispatchSettings() if section == "dispatch" else WriteBackSettings()
    value = given.get(name, getattr(defaults, name))
    return str(int(value)) if name in ("concurrency", "attempts") else format_duration(value)


def _budget(config: ServerConfig, name: str) -> str:
    budget = config.budget
    if name == "per_task":
        return str(budget.per_task if budget and budget.per_task else DEFAULT_PER_TASK)
    if name == "budget_wait":
        wait = budget.budget_wait if budget and budget.budget_wait is not None else None
        return format_duration(DEFAULT_BUDGET_WAIT if wait is None else wait)
    limit = getattr(budget, name) if budget else 0
    return str(limit) if limit else "(no limit)"


def _kept(seconds: float | None) -> str:
    if seconds is None:
        return "off (kept for ever)"
    days = seconds / DAY
    return f"{days:g} days" if days == int(days) else format_duration(seconds)


def _size(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("MiB", 1 << 20), ("KB", 1000), ("KiB", 1024)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size} bytes"


def _source(source: GenericSource) -> str:
    defaults = GenericSource(name=source.name)
    parts = [
        f"{f.name}={getattr(source, f.name)!s}"
        for f in fields(source)
        if f.name != "name" and getattr(source, f.name) != getattr(defaults, f.name)
    ]
    return ", ".join(parts) or "(defaults)"


def _database_rows(app: AppContext) -> list[Row]:
    """Which database, and where its password comes from (never the password)."""
    settings = app.settings
    chosen: Database = app.database()  # reads no store: chooses from env, config.yml
    target = chosen.postgres
    if target is None:
        if app.environ.get("MECHA_DB_PATH"):
            source = "env MECHA_DB_PATH"
        else:
            source = "env MECHA_HOME" if app.environ.get("MECHA_HOME") else DEFAULT
        return [Row("database", f"SQLite {settings.shown(chosen.path)}", source,
                    f"{URL_VARIABLE} (or MECHA_DB_PATH)")]  # fmt: skip
    if target.origin == URL_VARIABLE:
        source = f"env {URL_VARIABLE}"
    else:
        line = target.origin.rsplit(":", 2)[-2] if target.origin.count(":") >= 2 else "?"
        source = f"{settings.shown(settings.config_path)}:{line}"
    rows = [Row("database_url", f"PostgreSQL {target.shown}", source, URL_VARIABLE)]
    if target.password:
        rows.append(Row("database password", REDACTED, target.password_from, ""))
    else:
        rows.append(Row("database password", "(none: libpq's PGPASSWORD or ~/.pgpass)",
                        DEFAULT, ""))  # fmt: skip
    return rows


def as_json(rows: list[Row]) -> list[dict[str, Any]]:
    """The rows for ``--json``: setting, value, source, variable."""
    return [asdict(row) for row in rows]
