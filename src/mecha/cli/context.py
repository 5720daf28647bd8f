"""The object every command gets: settings, the store and secrets opened on first use,
the redactor that all output to the user passes through, and how log lines look.

A command that only reads (``READ_ONLY``) never creates Mecha's folder or database: with
no database yet (no SQLite file; a PostgreSQL database without Mecha's tables) it reads
an empty one that lives in memory, and says "nothing yet".

The database is chosen on first use (``database``): ``MECHA_DATABASE_URL``, config.yml's
``database_url:``, else SQLite. A PostgreSQL password is known to the redactor from then
on (and the environment's from the start), so no output shows it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from mecha.config.settings import Settings, ensure_home, load_secrets
from mecha.errors import MechaError
from mecha.known_secrets import KnownSecrets
from mecha.redaction import RedactingFilter, Redactor
from mecha.store import Store

if TYPE_CHECKING:
    from mecha.config.database import Database
    from mecha.secrets import Secrets

#: commands that only read the store: they must not create the folder or the database
READ_ONLY = frozenset(
    {"worker ls", "worker show", "worker logs", "config", "doctor", "event ls", "event show",
     "event replay", "task ls", "task show", "budget"}
)  # fmt: skip


class AppContext:
    """Lazily opened collaborators for one CLI run."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.settings = Settings.from_env(self.environ)
        #: every secret value known: secrets.yml's, the API key, the workers' keys
        self.known = KnownSecrets()
        self.log_filter = RedactingFilter()
        self.known.attach(self.log_filter)
        self._know_env_password()
        self._know_env_api_key()
        self._handler: logging.Handler | None = None
        self._store: Store | None = None
        self._secrets: Secrets | None = None

    @property
    def user_home(self) -> Path:
        """The user's home folder (credential folders, ~ in paths)."""
        return Path(self.environ.get("HOME") or Path.home())

    @property
    def secrets_file(self) -> str:
        """The secrets file as hints name it (``~/.mecha/secrets.yml`` or the real path)."""
        return self.settings.shown(self.settings.secrets_path)

    def who(self, command: str) -> str:
        """Who runs ``command``, as the timeline records an action by hand:
        ``alice (mecha task retry)`` (the login name from USER / LOGNAME)."""
        user = self.environ.get("USER") or self.environ.get("LOGNAME") or "someone"
        return f"{user} ({command})"

    def database(self) -> Database:
        """The database chosen (env, config.yml, secrets.yml); its password masked from now."""
        from mecha.config.settings import with_database

        self.settings = with_database(self.settings, self.environ, secrets=self.secrets)
        assert self.settings.database is not None
        self.known.add(self.settings.database.secret_values())
        return self.settings.database

    def database_name(self) -> str:
        """The database as messages name it: its file, or its PostgreSQL URL (no password)."""
        from mecha.app.stores import describe

        self.database()
        return describe(self.settings)

    def no_database_yet(self) -> str:
        """``there is no database at ~/.mecha/mecha.db yet`` (or PostgreSQL's words)."""
        if self.database().postgres is not None:
            return f"{self.database_name()} holds no Mecha tables yet"
        return f"there is no database at {self.database_name()} yet"

    def store(self) -> Store:
        """The database, created and migrated on first use (read-only commands: see READ_ONLY)."""
        if self._store is None:
            from mecha.app.stores import empty_store, open_existing_store, open_store

            self.database()
            if _command() in READ_ONLY:
                self._store = open_existing_store(self.settings) or empty_store(self.settings)
            else:
                ensure_home(self.settings)
                self._store = open_store(self.settings)
            from mecha.store.redacting import RedactingStore

            self._store = RedactingStore(self._store, self.known)
            self._learn_worker_keys(self._store)
        return self._store

    def _know_env_password(self) -> None:
        """Mask ``MECHA_DATABASE_URL``'s password from the start (a malformed URL is
        reported when the store is opened; its message never quotes the URL)."""
        if not self.settings.database_url:
            return
        from mecha.config.database import UrlProblem, parse_url

        try:
            target = parse_url(self.settings.database_url, origin="")
        except UrlProblem:
            return
        self.known.add(target.secret_values())

    def _know_env_api_key(self) -> None:
        """Mask ``MECHA_API_KEY`` from the start, in every command's output (a key too short
        to be one is refused where it is read, and masking it would blot common words)."""
        from mecha.config.server_file import MIN_API_KEY

        key = self.environ.get("MECHA_API_KEY", "")
        if len(key.strip()) >= MIN_API_KEY:
            self.known.add({key})

    @property
    def redactor(self) -> Redactor:
        """The redactor over every secret value known now."""
        return self.known.redactor

    def _learn_worker_keys(self, store: Store) -> None:
        """Know the registered workers' keys (literal or ${VAR}), so output never shows one."""
        from mecha.worker.files import from_record
        from mecha.worker.held_secrets import worker_secret_values

        for record in store.list_workers():
            try:
                spec = from_record(record, environ=self.environ, home=self.user_home).spec
            except MechaError:
                continue  # a broken definition resolves no key
            self.known.add(worker_secret_values(spec))

    def secrets(self) -> Secrets:
        """The secrets file (empty if absent); its values are masked in all output."""
        if self._secrets is None:
            self._secrets = load_secrets(self.settings)
            self.known.add(self._secrets.values())
        return self._secrets

    def reload_secrets(self) -> Secrets:
        """Read the secrets file again (SIGHUP); new values are masked too, old ones still."""
        self._secrets = None
        return self.secrets()

    def redact(self, text: str) -> str:
        """``text`` with every known secret and token shape masked."""
        return self.redactor.redact(text)

    def echo(self, text: str = "", *, err: bool = False) -> None:
        """Print through the redactor."""
        click.echo(self.redact(text), err=err)

    def warn(self, text: str) -> None:
        """A warning line on stderr."""
        self.echo(f"warning: {text}", err=True)

    def start_logging(self, stream: TextIO) -> None:
        """Log to ``stream`` through the redactor; level from MECHA_LOG_LEVEL (WARNING),
        format from MECHA_LOG_FORMAT (``mecha.cli.log_format``: text, or json).

        A text line: ``2026-12-06T22:41:58.123 INFO mecha.serve: …`` (local time). Lines
        written per request at INFO (health probes) are shown at DEBUG only. ConfigError
        if MECHA_LOG_FORMAT names no format.
        """
        from mecha.cli.log_format import PerRequestAtDebug, formatter, log_format

        chosen = log_format(self.environ)
        level = self.environ.get("MECHA_LOG_LEVEL", "WARNING").upper()
        handler = logging.StreamHandler(stream)
        handler.addFilter(PerRequestAtDebug())  # reads the access log's args: before the redactor
        handler.addFilter(self.log_filter)
        if chosen == "json":
            from mecha.engine.log_context import ContextFilter

            handler.addFilter(ContextFilter())
        handler.setFormatter(formatter(chosen))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level if level in logging.getLevelNamesMapping() else logging.WARNING)
        self._handler = handler

    def announce(self, logger: str, text: str) -> None:
        """An INFO log line shown whatever the level (``mecha serve``'s start and stop)."""
        if self._handler is None:
            self.echo(f"{logger}: {text}", err=True)
            return
        record = logging.LogRecord(logger, logging.INFO, __file__, 0, text, None, None)
        self._handler.handle(record)

    def close(self) -> None:
        """Close what was opened and stop logging."""
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(AppContext)


def _command() -> str:
    """The command running now, without the program name: "worker ls" ("" outside one)."""
    ctx = click.get_current_context(silent=True)
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))
