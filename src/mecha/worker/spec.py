"""Worker definitions: the worker YAML model, its kinds and states.

A worker file names the events a worker takes, the prompt it renders, where the prompt
runs (``docker:`` managed, ``adapter:`` in-process bridge, ``endpoint:`` unmanaged) and
the policy for what its result may write back. The kind is inferred from which of the
three is present. This module holds the shape and the per-field rules; the rules that
join several fields and the mapping of mistakes to ``file:line:column`` are in
``mecha.worker.parser``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mecha.cron import ScheduleError, parse_schedule
from mecha.duration import parse_duration
from mecha.errors import SecretsError
from mecha.secrets import parse_reference
from mecha.worker.controls import BudgetSection, Flow, RateLimit, Trust
from mecha.worker.kind import WorkerKind, WorkerState
from mecha.worker.section import (
    DurationText,
    Section,
    Text,
    TextList,
    Whole,
    checked_duration,
    checked_template,
    invalid,
)
from mecha.worker.trust import COMMAND_PATTERN, COMMENT_TYPES

__all__ = ["Trust", "WorkerKind", "WorkerSpec", "WorkerState"]

NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
SOURCE_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
MEMORY_PATTERN = r"^[1-9][0-9]*[MmGg]$"
DEFAULT_TIMEOUT = "10m"
DEFAULT_PIDS = 1024
#: env keys the runtime sets itself; a worker file may not set them (any case)
RESERVED_ENV = frozenset(
    {"WORKER_PORT", "WORKER_API_KEY", "WORKER_TIMEOUT", "WORKER_DRY_RUN", "HOME"}
)
#: credential folder names mounted read-only into managed workers
CREDENTIAL_DIRS = {"claude": ".claude", "codex": ".codex"}


def check_url(value: str) -> str:
    """An http(s) URL with a host that is not link-local, unspecified or multicast."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(
            f'"{value}" is not an http:// or https:// URL with a host',
            "write it like http://127.0.0.1:8000",
        )
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return value  # a host name: resolved and checked again when the worker starts
    if address.is_link_local or address.is_unspecified or address.is_multicast:
        raise invalid(
            f"points at {address}, a link-local, unspecified or multicast address",
            "these reach cloud metadata services or nothing; use the service's real address",
        )
    return value


def check_reference(value: str) -> str:
    """A secrets reference ``backend.name`` (or empty)."""
    if value:
        try:
            parse_reference(value)
        except SecretsError as exc:
            raise invalid(exc.message, exc.hint) from None
    return value


class Resources(Section):
    """Limits for a managed worker's container."""

    cpu: float = Field(0, ge=0, description="CPU cores (0 = no limit); 1.5 is one and a half")
    memory: str = Field(
        "",
        pattern=MEMORY_PATTERN,
        description="memory limit: a whole number and M or G (binary units), e.g. 512M, 2G",
    )
    pids: Whole = Field(DEFAULT_PIDS, ge=0, description="process limit; 0 means the default 1024")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if isinstance(value, str) and value and not re.match(MEMORY_PATTERN, value):
            raise invalid(f'"{value}" is not a size', "write a whole number and M or G: 512M, 2G")
        return value

    @field_validator("pids")
    @classmethod
    def _pids(cls, value: int) -> int:
        return value or DEFAULT_PIDS


class DockerSpec(Section):
    """A managed worker: a container Mecha creates, starts, hardens and stops."""

    image: str = Field(min_length=1, description="image to run, e.g. mecha-worker:latest")
    host: str = Field(
        "", description="Docker daemon URL (unix://, tcp://, ssh://); default DOCKER_HOST"
    )
    cwd: str = Field("", description="absolute host folder mounted read-write at /workspace")
    credentials: TextList = Field(
        default_factory=list,
        description="host credential folders to mount read-only: claude, codex",
    )
    resources: Resources = Field(default_factory=Resources)  # type: ignore[arg-type]
    lifecycle: Literal["persistent", "disposable"] = Field(
        "persistent", description="persistent: one long-lived container; disposable: one per task"
    )
    pool: Whole = Field(
        0, ge=0, le=32,
        description="disposable only: containers kept started and healthy, so a task does not "
        "wait for one to start",
    )  # fmt: skip
    env: dict[str, Text] = Field(default_factory=dict, description="environment for the container")
    token: str = Field("", description="secrets.yml reference backend.name, e.g. claude.default")
    api_key: str = Field("", description="key the worker demands on POST /task; use ${VAR}")
    expose: bool = Field(False, description="publish the port on all interfaces (needs api_key)")
    labels: dict[str, Text] = Field(default_factory=dict, description="extra Docker labels")
    plugins: list[str] = Field(default_factory=list, description="Claude Code plugins to install")
    plugin_marketplaces: list[str] = Field(default_factory=list, description="plugin marketplaces")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("unix", "tcp", "ssh", "npipe"):
            raise invalid(
                f'"{value}" is not a Docker daemon URL',
                "write unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST",
            )
        return value

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str) -> str:
        if value and not value.startswith(("/", "~")):
            raise invalid(
                f'"{value}" is a relative path',
                "write the full path, e.g. /home/me/project or ${HOME}/project",
            )
        return value

    @field_validator("credentials")
    @classmethod
    def _credentials(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in CREDENTIAL_DIRS:
                raise invalid(
                    f'"{name}" is not a credential Mecha can mount',
                    f"use any of: {', '.join(CREDENTIAL_DIRS)}",
                )
        return value

    _token = field_validator("token")(check_reference)


class AdapterSpec(Section):
    """An adapter worker: Mecha bridges the worker contract to a model API in-process."""

    type: Literal["ollama", "openai", "local"] = Field(
        description="ollama, openai (any OpenAI-style API) or local (the embedded model)"
    )
    upstream: str = Field(
        "", description="base URL of the model API, e.g. http://127.0.0.1:11434 (not for local)"
    )
    model: str = Field(
        "", description="model name passed to the API; for local, a GGUF file (default SmolLM2)"
    )
    api_key: str = Field("", description="API key; prefer ${VAR} or token: (never stored)")
    token: str = Field("", description="secrets.yml reference backend.name, e.g. openai.default")
    stream: bool = Field(
        True, description="read the answer as a stream (tokens show as they come); false: whole"
    )
    max_tokens: Whole = Field(1024, ge=1, le=1_000_000, description="most tokens the model writes")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        return check_url(value) if value else value

    @model_validator(mode="after")
    def _needs_upstream(self) -> AdapterSpec:
        if self.type != "local" and not self.upstream:
            raise invalid(
                f"an adapter of type {self.type} needs upstream:, the base URL of the model API",
                "e.g. upstream: http://127.0.0.1:11434 for Ollama",
            )
        if self.type != "local" and not self.model:
            raise invalid(f"an adapter of type {self.type} needs model:", "e.g. model: llama3.2")
        return self

    _token = field_validator("token")(check_reference)


class EventRule(Section):
    """Which events a worker takes and the prompt it renders for them."""

    source: str = Field(pattern=SOURCE_PATTERN, description="github, gitlab or a generic source")
    on: TextList = Field(
        min_length=1, description="event types, e.g. pull_request.opened (cron: tick, the default)"
    )
    filter: dict[str, Text | list[Text]] = Field(
        default_factory=dict, description="event attributes that must match, e.g. repo_name: app"
    )
    prompt: str = Field(
        min_length=1, description="prompt template: Go ({{.diff}}) or Jinja2 ({{ diff }})"
    )
    auto: bool = Field(True, description="false: the rule matches and is logged but never runs")
    schedule: str = Field(
        "",
        description='source: cron: "0 9 * * 1-5" (minute hour day month weekday) or "@every 10m"',
    )
    subject: str = Field("", description="source: cron: what the tick is about (its subject)")
    tz: str = Field(
        "", description="source: cron: the schedule's IANA time zone (default: the server's)"
    )
    overlap: Literal["skip", "queue"] = Field(
        "skip", description="source: cron: skip a tick while the last one runs, or queue it"
    )
    catch_up: bool = Field(
        False, description="source: cron: after a downtime, run one missed tick at start"
    )
    command: str = Field(
        "", description="a comment command, e.g. /review: new comments whose first line starts so"
    )

    @model_validator(mode="after")
    def _cron(self) -> EventRule:
        if self.command:
            if self.source not in COMMENT_TYPES:
                raise invalid("command: is for source: github or gitlab rules", "remove command:")
            if not re.match(COMMAND_PATTERN, self.command):
                raise invalid(
                    f'"{self.command}" is not a command',
                    "write a slash and one word, e.g. command: /review",
                )
        cron_keys = [k for k in ("schedule", "subject", "tz") if getattr(self, k)]
        if self.source != "cron":
            if cron_keys:
                raise invalid(
                    f"{cron_keys[0]}: is for source: cron rules", f"remove {cron_keys[0]}:"
                )
            return self
        if not self.schedule:
            raise invalid('a source: cron rule needs schedule:, e.g. schedule: "0 9 * * 1-5"')
        try:
            parse_schedule(self.schedule, self.tz)
        except ScheduleError as exc:
            raise invalid(f"schedule: {exc}") from None
        if any(t != "tick" for t in self.on):
            raise invalid(
                "a source: cron rule takes only on: [tick]", "remove on: or write on: [tick]"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _cron_defaults(cls, value: Any) -> Any:
        """A cron rule's type is tick, and its subject the schedule unless given."""
        if isinstance(value, dict) and value.get("command") and "on" not in value:
            value = {**value, "on": list(COMMENT_TYPES.get(str(value.get("source")), ()))}
        if isinstance(value, dict) and value.get("source") == "cron":
            value = dict(value)
            value.setdefault("on", ["tick"])
            if not value.get("subject") and isinstance(value.get("schedule"), str):
                value["subject"] = value["schedule"]
        return value

    @field_validator("on")
    @classmethod
    def _on(cls, value: list[str]) -> list[str]:
        if any(not item.strip() for item in value):
            raise invalid("an empty event type", "write types like pull_request.opened")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        return checked_template(value)


class WorkerSpec(Section):
    """One worker file."""

    name: str = Field(pattern=NAME_PATTERN, description="unique name: letters, digits, _ . -")
    endpoint: str = Field("", description="URL of an unmanaged worker (GET /health, POST /task)")
    docker: DockerSpec | None = Field(None, description="run as a managed Docker container")
    adapter: AdapterSpec | None = Field(None, description="run through an in-process adapter")
    events: list[EventRule] = Field(default_factory=list, description="event rules")
    policy: dict[str, Any] = Field(default_factory=dict, description="what results may write back")
    timeout: DurationText = Field(DEFAULT_TIMEOUT, description="per-task time limit, e.g. 30m, 1h")
    concurrency: Whole = Field(1, ge=1, le=256, description="tasks this worker runs at once")
    max_retries: Whole = Field(
        3, ge=0, le=100, description="retries after a transient failure, then dead-letter"
    )
    rate_limit: RateLimit = Field(default_factory=RateLimit)  # type: ignore[arg-type]
    trust: Trust = Field(default_factory=Trust)  # type: ignore[arg-type]
    flow: Flow | None = Field(None, description="per-key flow control: key, debounce, supersede")
    budget: BudgetSection | None = Field(None, description="tokens and tasks it may use")

    model_config = ConfigDict(
        title="Mecha worker",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.match(NAME_PATTERN, value):
            raise invalid(
                f'"{value}" is not allowed',
                "start with a letter or digit; then letters, digits, _ . - only",
            )
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_url(value) if value else value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        return value if checked_duration(value) else DEFAULT_TIMEOUT

    @property
    def kind(self) -> WorkerKind:
        """managed if docker:, adapter if adapter:, else unmanaged."""
        if self.docker is not None:
            return WorkerKind.MANAGED
        if self.adapter is not None:
            return WorkerKind.ADAPTER
        return WorkerKind.UNMANAGED

    @property
    def timeout_seconds(self) -> float:
        """The task time limit in seconds."""
        return parse_duration(self.timeout)
