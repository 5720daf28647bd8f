"""The worker's settings, read once from the environment at start.

``WORKER_BACKEND`` (claude | codex | gemini | echo), ``WORKER_PORT`` (8080),
``WORKER_HOST`` (0.0.0.0), ``WORKER_API_KEY`` (Bearer key required on /task when set),
``WORKER_TIMEOUT`` (seconds per task, 600), ``WORKER_DRY_RUN`` (true: echo the prompt,
run nothing). Everything else in the environment is handed to the CLI, except
``WORKER_API_KEY``: the CLI has no use for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

BACKENDS = ("claude", "codex", "gemini", "echo")
DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 600.0
#: the CLI runs here when the folder exists (the bind-mounted repository)
WORKSPACE = "/workspace"
#: names whose values are secrets: kept out of logs and scrubbed from answers
SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PAT")
#: shorter values are not scrubbed (they would match ordinary words)
SECRET_MIN_LENGTH = 8
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class ConfigError(Exception):
    """A WORKER_* variable has a value the worker cannot use."""


@dataclass(frozen=True, kw_only=True)
class Config:
    """What the worker was started with."""

    backend: str
    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"  # noqa: S104 - inside a container; Docker publishes the port
    api_key: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT
    dry_run: bool = False
    #: the CLI's working folder ("" = the worker's own)
    cwd: str = ""
    #: the CLI's environment
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or an answer."""
        found = {self.api_key} if self.api_key else set()
        for name, value in self.env.items():
            if name.upper().endswith(SECRET_SUFFIXES) and len(value) >= SECRET_MIN_LENGTH:
                found.add(value)
        return tuple(sorted(found, key=len, reverse=True))


def from_env(environ: Mapping[str, str] | None = None) -> Config:
    """Read the settings; ConfigError says which variable is wrong and why."""
    env = dict(os.environ if environ is None else environ)
    backend = env.get("WORKER_BACKEND", "echo").strip().lower() or "echo"
    if backend not in BACKENDS:
        raise ConfigError(f"WORKER_BACKEND={backend!r}: use one of {', '.join(BACKENDS)}")
    api_key = env.pop("WORKER_API_KEY", "").strip()
    return Config(
        backend=backend,
        port=_port(env.get("WORKER_PORT", "")),
        host=env.get("WORKER_HOST", "").strip() or "0.0.0.0",  # noqa: S104
        api_key=api_key,
        timeout=_timeout(env.get("WORKER_TIMEOUT", "")),
        dry_run=_flag("WORKER_DRY_RUN", env.get("WORKER_DRY_RUN", "")),
        cwd=WORKSPACE if os.path.isdir(WORKSPACE) else "",
        env=env,
    )


def _port(text: str) -> int:
    if not text.strip():
        return DEFAULT_PORT
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"WORKER_PORT={text!r} is not a port number") from None
    if not 0 <= port < 65536:
        raise ConfigError(f"WORKER_PORT={port} is out of range (0-65535; 0 = any free port)")
    return port


def _timeout(text: str) -> float:
    if not text.strip():
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"WORKER_TIMEOUT={text!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ConfigError(f"WORKER_TIMEOUT={text!r} must be more than 0 seconds")
    return seconds


def _flag(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={text!r}: use true or false")
