"""The object every command gets: settings, the store and secrets opened on first use,
and the redactor that all output to the user passes through."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from mecha.config import Settings, ensure_home, load_secrets
from mecha.redaction import RedactingFilter, Redactor
from mecha.store import Store

if TYPE_CHECKING:
    from mecha.secrets import Secrets


class AppContext:
    """Lazily opened collaborators for one CLI run."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.settings = Settings.from_env(self.environ)
        self.redactor = Redactor()
        self.log_filter = RedactingFilter(self.redactor)
        self._handler: logging.Handler | None = None
        self._store: Store | None = None
        self._secrets: Secrets | None = None

    @property
    def user_home(self) -> Path:
        """The user's home folder (credential folders, ~ in paths)."""
        return Path(self.environ.get("HOME") or Path.home())

    def store(self) -> Store:
        """The database, created and migrated on first use."""
        if self._store is None:
            from mecha.store.sqlite import open_sqlite

            ensure_home(self.settings)
            self._store = open_sqlite(self.settings.db_path)
        return self._store

    def secrets(self) -> Secrets:
        """The secrets file (empty if absent); its values are masked in all output."""
        if self._secrets is None:
            self._secrets = load_secrets(self.settings)
            self.redactor = self.redactor.with_values(self._secrets.values())
            self.log_filter.redactor = self.redactor
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
        """Log to ``stream`` through the redactor; level from MECHA_LOG_LEVEL (WARNING)."""
        level = self.environ.get("MECHA_LOG_LEVEL", "WARNING").upper()
        handler = logging.StreamHandler(stream)
        handler.addFilter(self.log_filter)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level if level in logging.getLevelNamesMapping() else logging.WARNING)
        self._handler = handler

    def close(self) -> None:
        """Close what was opened and stop logging."""
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(AppContext)
