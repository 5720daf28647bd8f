"""Every error Mecha raises on purpose, and how it is shown.

The tree::

    MechaError                      message + hint (what to do); CLI exit code 1
    ├── UsageError                  a command was called wrongly; exit code 2
    ├── FileError                   a YAML file has mistakes; one Problem (file:line:col) each
    ├── ConfigError                 ~/.mecha/config.yml, environment, home folder
    │   └── WorkerFileError         (also a FileError) a worker YAML file
    ├── SecretsError                ~/.mecha/secrets.yml: unreadable, unsafe mode, bad reference
    │   └── SecretsFileError        (also a FileError) its YAML has mistakes
    ├── StoreError                  the database cannot be opened or used
    │   └── MigrationError          the schema cannot be brought up to date
    ├── RegistryError               the set of registered workers refuses a change
    │   ├── WorkerNotFound
    │   ├── WorkerExists
    │   └── WorkerStateError        e.g. removing a worker that is still online
    ├── WebhookError                a delivery is refused; carries the HTTP status to answer
    ├── TemplateError               a prompt template cannot be compiled or rendered
    │   └── MissingKey              it names a value the event does not have
    ├── EventNotFound               no stored event has that id
    ├── TaskNotFound                no stored task has that id
    ├── TaskStateError              e.g. retrying a task that is still running
    ├── WriteNotFound               an event has no write with that ledger key
    ├── WriteStateError             e.g. retrying a write that is done
    └── ServerError                 `mecha serve` cannot start, or the running one cannot be reached

The CLI prints ``str(error)`` through the redactor and exits with ``exit_code``;
nothing below the entry points prints or exits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a file: 1-based line and column, as editors count them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in a file: where it is, what is wrong, and what to do about it."""

    location: Location
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class MechaError(Exception):
    """Something went wrong; the message says what and the hint says what to do."""

    exit_code = 1

    def __init__(self, message: str = "", *, hint: str = "") -> None:
        self.message = message or (self.__doc__ or type(self).__name__).strip()
        self.hint = hint
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(MechaError):
    """The command was called with arguments it cannot use."""

    exit_code = 2


class ConfigError(MechaError):
    """Mecha's configuration or home folder is not usable."""


class FileError(MechaError):
    """A file has mistakes; each Problem names the file, line and column."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        files = sorted({p.location.file for p in self.problems})
        where = files[0] if len(files) == 1 else f"{len(files)} files"
        body = "\n".join(f"  {p}".replace("\n", "\n  ") for p in self.problems)
        super().__init__(f"{head} in {where}:\n{body}")

    def __str__(self) -> str:
        return self.message


class WorkerFileError(FileError, ConfigError):
    """A worker file has mistakes."""


class SecretsError(MechaError):
    """The secrets file cannot be used, or a secret reference does not resolve."""


class SecretsFileError(FileError, SecretsError):
    """The secrets file has mistakes."""


class StoreError(MechaError):
    """The database cannot be opened or used."""


class MigrationError(StoreError):
    """The database schema cannot be brought up to date."""


class RegistryError(MechaError):
    """The set of registered workers refuses this change."""


class WorkerNotFound(RegistryError):
    """No worker with that name is registered."""


class WorkerExists(RegistryError):
    """A worker with that name is already registered."""


class WorkerStateError(RegistryError):
    """The worker is in a state that does not allow this change."""


class WebhookError(MechaError):
    """A webhook delivery is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status


class TemplateError(MechaError):
    """A prompt template cannot be compiled or rendered."""


class MissingKey(TemplateError):
    """The template names a value the event does not have."""

    def __init__(self, key: str, message: str = "", *, hint: str = "") -> None:
        super().__init__(
            message or f"the template uses {key!r}, which this event does not have", hint=hint
        )
        self.key = key


class EventNotFound(MechaError):
    """No stored event has that id."""


class ServerError(MechaError):
    """`mecha serve` cannot start, or the running server cannot be reached."""


class TaskNotFound(MechaError):
    """No stored task has that id."""


class TaskStateError(MechaError):
    """A task is not in a state that allows the change asked for (e.g. retrying a running one)."""


class WriteNotFound(MechaError):
    """No write of that event has that ledger key."""


class WriteStateError(MechaError):
    """A write is not in a state that allows the change asked for (e.g. retrying a done one)."""
