"""Settings: where Mecha keeps its files, read from the environment, and the home folder.

``MECHA_HOME`` moves the whole folder (default ``~/.mecha``); ``MECHA_DB_PATH`` moves only
the SQLite database; ``MECHA_DATABASE_URL`` (or config.yml's ``database_url:``) chooses
PostgreSQL instead (``with_database``; see ``mecha.config.database``). The server's other
settings: ``load_server_config`` (flags, ``MECHA_*`` variables, config.yml; see
``mecha.config.environment``). Nothing here runs at import: entry points call
``Settings.from_env()``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mecha.errors import ConfigError, SecretsError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mecha.config.database import Database, DatabaseKeys
    from mecha.config.server_file import ServerConfig
    from mecha.secrets import Secrets

HOME_MODE = 0o700


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Paths and options every command shares."""

    home: Path
    db_path: Path
    secrets_path: Path
    config_path: Path
    #: the user's home folder (``$HOME``): where ``~`` points in what the user is shown
    user_home: Path = field(default_factory=Path.home)
    #: ``MECHA_DATABASE_URL`` as set (it may hold a password: never shown)
    database_url: str = field(default="", repr=False)
    #: the database chosen (``with_database``); None until then, when a store opening
    #: chooses it from the environment, config.yml and secrets.yml itself
    database: Database | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``MECHA_HOME`` / ``MECHA_DB_PATH`` (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("MECHA_HOME") or Path(env.get("HOME") or Path.home()) / ".mecha")
        home = home.expanduser().absolute()
        db_path = (
            Path(env["MECHA_DB_PATH"]).expanduser().absolute()
            if env.get("MECHA_DB_PATH")
            else home / "mecha.db"
        )
        return cls(
            home=home,
            db_path=db_path,
            secrets_path=home / "secrets.yml",
            config_path=home / "config.yml",
            user_home=Path(env.get("HOME") or Path.home()),
            database_url=env.get("MECHA_DATABASE_URL", ""),
        )

    def shown(self, path: Path) -> str:
        """``path`` as hints name it: ``~/.mecha/…`` only when that is where it really is.

        With ``MECHA_HOME`` (or ``MECHA_DB_PATH``) moving a file, its real, absolute path.
        """
        default = self.user_home.expanduser().absolute() / ".mecha"
        if path.is_relative_to(default):
            return str(PurePosixPath("~/.mecha") / path.relative_to(default).as_posix())
        return str(path)


def ensure_home(settings: Settings) -> None:
    """Create the home folder (mode 0700) if it is missing; ConfigError if it cannot be."""
    try:
        settings.home.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create Mecha's folder {settings.home}: {exc.strerror}",
            hint="set MECHA_HOME to a folder you can write, or fix the permissions",
        ) from None
    if not settings.home.is_dir():
        raise ConfigError(
            f"{settings.home} is not a folder",
            hint="move that file away, or set MECHA_HOME to another folder",
        )


def load_secrets(settings: Settings) -> Secrets:
    """The secrets file; empty if there is none; SecretsError if it is unsafe or malformed."""
    from mecha.secrets import Secrets, check_secrets_mode, parse_secrets

    path = settings.secrets_path
    shown = settings.shown(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        return Secrets(file=shown)
    except OSError as exc:
        raise SecretsError(
            f"cannot read {path}: {exc.strerror}", hint="check its permissions"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretsError(f"{path} is not a regular file", hint="replace it with a YAML file")
    check_secrets_mode(stat.S_IMODE(info.st_mode), path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretsError(
            f"cannot read {path}: {exc}", hint="it must be UTF-8 YAML text"
        ) from None
    return replace(parse_secrets(text, file=str(path)), file=shown)


def load_server_config(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    flags: Mapping[str, str | None] | None = None,
) -> ServerConfig:
    """The server's settings: ``flags`` (serve's ``addr`` and ``api_key``), then the
    ``MECHA_*`` variables, then ``config.yml``, then the defaults
    (``mecha.config.environment``); SettingsError lists every mistake."""
    from mecha.config.environment import resolve_server
    from mecha.yaml_doc import Document, load_yaml

    path = settings.config_path
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"), file=str(path))
    except FileNotFoundError:
        doc = Document(data=None, file=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", hint="it must be UTF-8 YAML text") from None
    config = resolve_server(doc, environ, shown_file=settings.shown(path), flags=flags)
    if config.api_key_literal:
        from mecha.secrets import check_secrets_mode

        check_secrets_mode(
            stat.S_IMODE(path.stat().st_mode), path=str(path),
            what="a config.yml that holds a literal api_key",
            other_fix="write api_key: ${MECHA_API_KEY} and keep the key in the environment",
        )  # fmt: skip
    _check_literal_password(path, config.database)
    return config


def read_database_keys(settings: Settings, environ: Mapping[str, str]) -> DatabaseKeys:
    """config.yml's ``database_url`` and ``database_password`` only (defaults if absent).

    Every command that opens the store reads these; the rest of the file is serve's and
    ``mecha prune``'s, so a mistake elsewhere in it does not stop ``mecha event ls``.
    """
    from mecha.config.database import DatabaseKeys, check_keys
    from mecha.config.server_file import ConfigFileError
    from mecha.yaml_doc import load_yaml

    path = settings.config_path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DatabaseKeys()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", hint="it must be UTF-8 YAML text") from None
    if "database_" not in text:  # the common case, without parsing the YAML
        return DatabaseKeys()
    doc = load_yaml(text, file=str(path))  # FileError if the YAML itself is broken
    if not isinstance(doc.data, dict):
        return DatabaseKeys()
    keys, problems = check_keys(doc, doc.data, environ)
    if problems:
        raise ConfigFileError(problems)
    _check_literal_password(path, keys)
    return keys


def _check_literal_password(path: Path, keys: DatabaseKeys) -> None:
    if keys.literal:
        from mecha.secrets import check_secrets_mode

        check_secrets_mode(
            stat.S_IMODE(path.stat().st_mode), path=str(path),
            what="a config.yml whose database_url holds a password",
            other_fix="write the password as ${VAR} in the URL, or as database_password: "
            "backend.name with the password in secrets.yml",
        )  # fmt: skip


def choose_database(
    settings: Settings, environ: Mapping[str, str], *, secrets: Callable[[], Secrets] | None = None
) -> Database:
    """The database this Mecha uses: ``MECHA_DATABASE_URL``, else config.yml's
    ``database_url:``, else SQLite at ``settings.db_path``; ConfigError if the one given
    is malformed. ``secrets`` (load_secrets by default) is read only for a password
    reference."""
    from mecha.config.database import choose

    def read_secrets() -> Secrets:
        return load_secrets(settings) if secrets is None else secrets()

    keys = read_database_keys(settings, environ)
    return choose(
        db_path=settings.db_path, env_url=settings.database_url, keys=keys, secrets=read_secrets
    )


def with_database(
    settings: Settings, environ: Mapping[str, str], *, secrets: Callable[[], Secrets] | None = None
) -> Settings:
    """``settings`` with the database chosen (unchanged if it already is)."""
    if settings.database is not None:
        return settings
    return replace(settings, database=choose_database(settings, environ, secrets=secrets))
