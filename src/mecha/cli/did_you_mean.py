"""What an unknown command or option probably meant: "did you mean" for click's usage errors.

Click suggests close spellings of options and (from 8.4) of a group's commands itself.
This adds the rest: close spellings of the root group's commands (imported lazily, so
click does not know them), and names users bring from other tools (``--port``, ``list``,
``--verbose``) mapped to what Mecha calls them, with the value they typed kept.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import click

from mecha.config.server_file import DEFAULT_ADDR

DEFAULT_PORT = DEFAULT_ADDR.rpartition(":")[2]
#: a command name from elsewhere → the commands it may mean (those the group has are named)
COMMAND_ALIASES: dict[str, tuple[str, ...]] = {
    "list": ("ls",),
    "rm": ("remove",),
    "delete": ("remove",),
    "del": ("remove",),
    "register": ("add",),
    "check": ("validate", "doctor"),
    "lint": ("validate",),
    "run": ("serve",),
    "server": ("serve",),
    "start": ("serve",),
    "status": ("doctor",),
    "get": ("show",),
    "inspect": ("show",),
}
_LOGS = "Set MECHA_LOG_LEVEL=DEBUG for debug logs (MECHA_DEBUG=1 shows tracebacks)."
_DB = (
    "Set MECHA_DB_PATH=FILE to move the database, or MECHA_DATABASE_URL=postgresql://... "
    "to use PostgreSQL."
)
#: options that are environment variables in Mecha
ENV_OPTIONS = {
    "--verbose": _LOGS,
    "-v": _LOGS,
    "--debug": _LOGS,
    "--log-level": _LOGS,
    "--home": "Set MECHA_HOME=FOLDER to move Mecha's folder.",
    "--db": _DB,
    "--database": _DB,
}
_NO_SUCH_COMMAND = re.compile(r"No such command '(?P<name>.+)'\.")


def with_suggestion(exc: click.UsageError, args: Sequence[str]) -> click.UsageError:
    """``exc``, or the same error ending in a "Did you mean …?" that fits better.

    A name Mecha knows under another (``--port``, ``list``) wins over click's own close
    spelling (``--verbose`` is not ``--version``); otherwise click's suggestion stands,
    and where it has none, a close spelling of the group's commands is offered.
    """
    if exc.ctx is None:
        return exc
    if isinstance(exc, click.NoSuchOption):
        text = _option(exc.option_name, _value(exc.option_name, args), _options(exc.ctx))
    else:
        found = _NO_SUCH_COMMAND.fullmatch(exc.message)
        if found is None or not isinstance(exc.ctx.command, click.Group):
            return exc
        name = found["name"]
        if name.lower() not in COMMAND_ALIASES and "Did you mean" in exc.format_message():
            return exc  # click's own close spelling
        text = _command(name, exc.ctx.command.list_commands(exc.ctx))
    return click.UsageError(f"{exc.message} {text}", ctx=exc.ctx) if text else exc


def _command(name: str, names: Sequence[str]) -> str:
    meant = [n for n in COMMAND_ALIASES.get(name.lower(), ()) if n in names]
    meant = meant or difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not meant:
        return ""
    if len(meant) == 1:
        return f"Did you mean {meant[0]!r}?"
    return f"Did you mean one of {', '.join(repr(n) for n in meant)}?"


def _option(name: str, value: str, options: set[str]) -> str:
    if "--addr" in options and name in ("--port", "-p"):
        return f"Did you mean '--addr 127.0.0.1:{value or 'PORT'}'?"
    if "--addr" in options and name in ("--host", "-H", "--bind", "--listen", "--address"):
        addr = value if ":" in value else f"{value or 'HOST'}:{DEFAULT_PORT}"
        return f"Did you mean '--addr {addr}'?"
    if "--api-key" in options and name in ("--key", "--token", "--apikey"):
        return f"Did you mean '--api-key{' ' + value if value else ''}'?"
    return ENV_OPTIONS.get(name, "")


def _options(ctx: click.Context) -> set[str]:
    return {opt for param in ctx.command.params for opt in (*param.opts, *param.secondary_opts)}


def _value(name: str, args: Sequence[str]) -> str:
    """The value typed after option ``name`` (``--port 8080`` or ``--port=8080``), or ""."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.partition("=")[2]
        if arg == name and i + 1 < len(args) and not args[i + 1].startswith("-"):
            return args[i + 1]
    return ""
