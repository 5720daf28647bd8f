"""Settings: where Mecha keeps its files, read from the environment, and the home folder.

``MECHA_HOME`` moves the whole folder (default ``~/.mecha``); ``MECHA_DB_PATH`` moves only
the database. Nothing here runs at import: entry points call ``Settings.from_env()``.
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


def load_server_config(settings: Settings, environ: Mapping[str, str]) -> ServerConfig:
    """``config.yml`` (defaults if absent); ConfigFileError lists every mistake in it."""
    from mecha.config.server_file import ServerConfig, parse_config

    path = settings.config_path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ServerConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", hint="it must be UTF-8 YAML text") from None
    config = parse_config(text, file=str(path), environ=environ)
    if config.api_key_literal:
        from mecha.secrets import check_secrets_mode

        check_secrets_mode(
            stat.S_IMODE(path.stat().st_mode), path=str(path),
            what="a config.yml that holds a literal api_key",
            other_fix="write api_key: ${MECHA_API_KEY} and keep the key in the environment",
        )  # fmt: skip
    return config
