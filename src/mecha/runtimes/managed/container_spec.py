"""The container a managed worker runs in: its exact create parameters (upstream §10.1).

``container_spec`` decides them from the worker's ``docker:`` section, its resolved token
and a few facts about this host (``HostFacts``); it does no I/O and imports no Docker
library. ``read_host`` is the one place that looks at the filesystem: it resolves the
workspace's symlinks, sees which credential folders exist and picks the user.

What a container gets, and nothing more:
* a name (``mecha-worker-<name>`` / ``mecha-disposable-<name>-<16 hex>``) and labels;
* port 8080 published on 127.0.0.1 (0.0.0.0 only with ``expose``, which needs an api_key);
* a non-root user, no capabilities, no new privileges, a pid limit, CPU and memory limits;
* ``/workspace`` (read-write, never a sensitive folder) and credential folders (read-only);
* the one LLM credential its worker names. No other secret (forge tokens, webhook
  secrets) may appear in its environment, labels, mounts or command: ``withheld`` values
  found anywhere in the parameters are refused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mecha.errors import ConfigError
from mecha.redaction import MIN_LENGTH
from mecha.secrets import parse_reference, token_env_var
from mecha.worker.rules import sensitive_path_reason
from mecha.worker.spec import CREDENTIAL_DIRS, DEFAULT_PIDS, NAME_PATTERN, RESERVED_ENV, DockerSpec

CONTAINER_PORT = "8080/tcp"
WORKSPACE = "/workspace"
WORKER_HOME = "/home/worker"
#: who a container runs as when Mecha runs as root and the workspace gives no better owner
NOBODY = "65534:65534"
LABEL_WORKER = "mecha.worker"
LABEL_LIFECYCLE = "mecha.lifecycle"
#: which Mecha made a disposable container (``owner_label``): a serve sweeps only its own
LABEL_OWNER = "mecha.owner"
DISPOSABLE = "disposable"
#: tokens for forges and chat platforms: they stay in Mecha, never in a worker
FORGE_TOKEN_PREFIXES = (
    *("ghp_", "ghs_", "ghr_", "gho_", "ghu_", "ghes_", "github_pat_"),
    *("glpat-", "gloas-", "glrt-", "gldt-", "xoxb-", "xoxp-"),
)
_HIDDEN = "<hidden>"
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_DISPOSABLE_ID = re.compile(r"[0-9a-f]{16}")
_UNITS = {"m": 1024**2, "g": 1024**3}


class ContainerSpecError(ConfigError):
    """A managed worker's container cannot be made as its worker file asks."""


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What ``container_spec`` needs to know about this host; ``read_host`` gathers it."""

    #: "uid:gid" the container runs as; never "0:…"
    user: str
    #: the invoking user's home folder, symlinks resolved
    home: PurePosixPath
    #: ``docker.cwd`` with ``~`` expanded and symlinks resolved; None when not set
    cwd: PurePosixPath | None = None
    #: the ``docker.credentials`` names whose host folder exists
    credentials: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Mount:
    """A bind mount from the host into the container."""

    source: str
    target: str
    read_only: bool

    def as_api(self) -> dict[str, Any]:
        """The Engine API's Mount object (a missing source is an error, never created)."""
        return {
            "Type": "bind",
            "Source": self.source,
            "Target": self.target,
            "ReadOnly": self.read_only,
        }


@dataclass(frozen=True, repr=False)
class ContainerSpec:
    """Everything ``docker.containers.create(**spec.create_kwargs())`` needs.

    Its repr and ``redacted()`` show environment keys, never their values.
    """

    worker: str
    name: str
    image: str
    user: str
    env: tuple[tuple[str, str], ...] = field(default=())
    labels: Mapping[str, str] = field(default_factory=dict)
    #: the host address port 8080 is published on: 127.0.0.1, or 0.0.0.0 with expose
    host_ip: str = "127.0.0.1"
    mounts: tuple[Mount, ...] = ()
    pids_limit: int = DEFAULT_PIDS
    #: CPU limit in billionths of a CPU; 0 = none
    nano_cpus: int = 0
    #: memory limit in bytes; 0 = none
    mem_limit: int = 0
    #: the command to run; empty keeps the image's own
    command: tuple[str, ...] = ()
    disposable: bool = False

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``DockerClient.containers.create``."""
        kwargs: dict[str, Any] = {
            "image": self.image,
            "name": self.name,
            "command": list(self.command) or None,
            "user": self.user,
            "environment": [f"{key}={value}" for key, value in self.env],
            "labels": dict(self.labels),
            "ports": {CONTAINER_PORT: (self.host_ip, None)},
            "mounts": [mount.as_api() for mount in self.mounts],
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "pids_limit": self.pids_limit,
            "init": True,
        }
        if self.nano_cpus:
            kwargs["nano_cpus"] = self.nano_cpus
        if self.mem_limit:
            kwargs["mem_limit"] = self.mem_limit
        return kwargs

    def redacted(self) -> dict[str, Any]:
        """``create_kwargs()`` with every environment value replaced by <hidden>."""
        kwargs = self.create_kwargs()
        kwargs["environment"] = [f"{key}={_HIDDEN}" for key, _ in self.env]
        return kwargs

    def __repr__(self) -> str:
        return f"ContainerSpec({self.redacted()!r})"


def container_spec(
    name: str,
    docker: DockerSpec,
    *,
    token_value: str | None,
    api_key: str,
    host: HostFacts,
    disposable_id: str = "",
    withheld: Collection[str] = (),
    owner: str = "",
) -> ContainerSpec:
    """The container for worker ``name``; ContainerSpecError saying what to change if none.

    ``token_value`` is ``docker.token`` resolved from the secrets file. ``withheld`` holds
    every other secret value Mecha knows (``Secrets.values()``): none may reach the
    container. A disposable worker without ``disposable_id`` gets a fresh random one;
    ``owner`` (``owner_label``) marks it as this Mecha's, for the sweep after a crash.
    """
    if not re.fullmatch(NAME_PATTERN, name):
        raise ContainerSpecError(f'"{name}" is not a worker name', hint="letters, digits, _ . -")
    if host.user.partition(":")[0] in ("0", "root", ""):
        raise ContainerSpecError(
            f"worker {name}: a worker container never runs as root ({host.user!r})",
            hint="pass the invoking user's uid:gid (run_as picks one)",
        )
    if docker.expose and not api_key:
        raise ContainerSpecError(
            f"worker {name}: docker.expose publishes the worker on every interface, "
            "but it has no api_key",
            hint="set docker.api_key: ${WORKER_KEY} so only Mecha can send it tasks",
        )
    disposable = docker.lifecycle == DISPOSABLE
    spec = ContainerSpec(
        worker=name,
        name=_container_name(name, disposable=disposable, disposable_id=disposable_id),
        image=docker.image,
        user=host.user,
        env=_environment(name, docker, token_value=token_value, api_key=api_key),
        labels=_labels(name, docker.labels, disposable=disposable, owner=owner),
        host_ip="0.0.0.0" if docker.expose else "127.0.0.1",  # noqa: S104
        mounts=_mounts(name, docker, host),
        pids_limit=docker.resources.pids or DEFAULT_PIDS,
        nano_cpus=round(docker.resources.cpu * 1e9),
        mem_limit=memory_bytes(docker.resources.memory),
        disposable=disposable,
    )
    _refuse_leaks(spec, withheld, allowed=token_value or "")
    return spec


def run_as(uid: int, gid: int, *, workspace_owner: tuple[int, int] | None = None) -> str:
    """The container's "uid:gid": the invoking user's, never root's.

    Mecha running as root runs its workers as the workspace folder's owner (so they can
    write it), or as nobody when root owns it too or there is none.
    """
    if uid != 0:
        return f"{uid}:{gid}"
    if workspace_owner is not None and workspace_owner[0] != 0:
        return f"{workspace_owner[0]}:{workspace_owner[1]}"
    return NOBODY


def read_host(docker: DockerSpec, *, home: Path, uid: int, gid: int) -> HostFacts:
    """This host's answers for ``docker``: resolved workspace, credential folders, user.

    Reads the filesystem (resolve, stat), nothing else. ContainerSpecError if the
    workspace does not exist or is not a folder.
    """
    cwd = _resolved_cwd(docker.cwd, home=home) if docker.cwd else None
    owner = None
    if cwd is not None:
        info = cwd.stat()
        owner = (info.st_uid, info.st_gid)
    present = frozenset(
        name for name in docker.credentials if (home / CREDENTIAL_DIRS[name]).is_dir()
    )
    return HostFacts(
        user=run_as(uid, gid, workspace_owner=owner),
        home=PurePosixPath(home.resolve()),
        cwd=PurePosixPath(cwd) if cwd is not None else None,
        credentials=present,
    )


def memory_bytes(memory: str) -> int:
    """``512M`` / ``2G`` (binary units) in bytes; "" is 0 (no limit)."""
    if not memory:
        return 0
    return int(memory[:-1]) * _UNITS[memory[-1].lower()]


def new_disposable_id() -> str:
    """16 random hex digits naming one disposable container."""
    return secrets.token_hex(8)


def _resolved_cwd(cwd: str, *, home: Path) -> Path:
    path = home / cwd[2:] if cwd.startswith("~/") else home if cwd == "~" else Path(cwd)
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ContainerSpecError(
            f'docker.cwd "{cwd}" does not exist', hint="create the folder or fix the path"
        ) from None
    if not resolved.is_dir():
        raise ContainerSpecError(
            f'docker.cwd "{cwd}" is not a folder', hint="mount a project folder"
        )
    return resolved


def persistent_name(worker: str) -> str:
    """The container name of persistent worker ``worker``."""
    return f"mecha-worker-{worker}"


def _container_name(name: str, *, disposable: bool, disposable_id: str) -> str:
    if not disposable:
        return persistent_name(name)
    disposable_id = disposable_id or new_disposable_id()
    if not _DISPOSABLE_ID.fullmatch(disposable_id):
        raise ValueError(f"a disposable id is 16 lower-case hex digits, not {disposable_id!r}")
    return f"mecha-disposable-{name}-{disposable_id}"


def owner_label(database: str) -> str:
    """The ``mecha.owner`` value of the Mecha whose database is at ``database`` (resolved)."""
    return hashlib.sha256(database.encode()).hexdigest()[:16]


def _labels(
    name: str, extra: Mapping[str, str], *, disposable: bool, owner: str = ""
) -> dict[str, str]:
    labels = {}
    for key, value in extra.items():
        if key.lower().startswith("mecha."):
            raise ContainerSpecError(
                f'worker {name}: docker.labels "{key}" uses the mecha. prefix, '
                "which Mecha keeps for itself",
                hint="rename the label, e.g. team.owner",
            )
        labels[key] = value
    labels[LABEL_WORKER] = name
    if disposable:
        labels[LABEL_LIFECYCLE] = DISPOSABLE
        if owner:
            labels[LABEL_OWNER] = owner
    return labels


def _environment(
    name: str, docker: DockerSpec, *, token_value: str | None, api_key: str
) -> tuple[tuple[str, str], ...]:
    """In order: token var, docker.env (wins), WORKER_API_KEY, HOME, plugin lists."""
    env: dict[str, str] = {}
    if docker.token and not token_value:
        raise ContainerSpecError(
            f"worker {name}: docker.token {docker.token} was not resolved",
            hint="check the secrets file has that token (mecha doctor)",
        )
    if token_value:
        backend = parse_reference(docker.token)[0] if docker.token else ""
        env[token_env_var(token_value, backend=backend)] = token_value
    for key, value in docker.env.items():
        _check_env(name, key, value, disposable=docker.lifecycle == DISPOSABLE)
        env[key] = value
    if api_key:
        env["WORKER_API_KEY"] = api_key
    env["HOME"] = WORKER_HOME if docker.credentials else "/tmp"  # noqa: S108
    if docker.plugins:
        env["CLAUDE_PLUGINS"] = "\n".join(docker.plugins)
    if docker.plugin_marketplaces:
        env["CLAUDE_PLUGIN_MARKETPLACES"] = "\n".join(docker.plugin_marketplaces)
    return tuple(env.items())


def _check_env(name: str, key: str, value: str, *, disposable: bool) -> None:
    upper = key.upper()
    if upper in RESERVED_ENV or (disposable and upper.startswith("WORKER_")):
        raise ContainerSpecError(
            f"worker {name}: docker.env.{key} is set by Mecha itself",
            hint=f"remove it; reserved: {', '.join(sorted(RESERVED_ENV))}"
            + (" and every WORKER_* for disposable workers" if disposable else ""),
        )
    if not _ENV_KEY.fullmatch(key):
        raise ContainerSpecError(
            f'worker {name}: docker.env "{key}" is not an environment variable name',
            hint="use letters, digits and _, starting with a letter",
        )
    if "\0" in value:
        raise ContainerSpecError(f"worker {name}: docker.env.{key} holds a NUL character")
    if value.startswith(FORGE_TOKEN_PREFIXES):
        raise ContainerSpecError(
            f"worker {name}: docker.env.{key} holds a forge or chat token (not shown)",
            hint="workers get their LLM credential only; Mecha itself talks to the forge",
        )


def _mounts(name: str, docker: DockerSpec, host: HostFacts) -> tuple[Mount, ...]:
    mounts = []
    if docker.cwd:
        if host.cwd is None:
            raise ContainerSpecError(f'worker {name}: docker.cwd "{docker.cwd}" was not resolved')
        reason = sensitive_path_reason(host.cwd, home=host.home)
        if reason:
            shown = f'"{docker.cwd}"' + (f" (→ {host.cwd})" if str(host.cwd) != docker.cwd else "")
            raise ContainerSpecError(
                f"worker {name}: docker.cwd {shown} may not be mounted: {reason}",
                hint="mount a project folder, e.g. /home/me/project",
            )
        mounts.append(Mount(str(host.cwd), WORKSPACE, read_only=False))
    for credential in docker.credentials:
        folder = host.home / CREDENTIAL_DIRS[credential]
        if credential not in host.credentials:
            raise ContainerSpecError(
                f"worker {name}: credentials {credential}: {folder} does not exist",
                hint=f"log in with the {credential} CLI on this host first, or use token:",
            )
        target = f"{WORKER_HOME}/{CREDENTIAL_DIRS[credential]}"
        mounts.append(Mount(str(folder), target, read_only=True))
    return tuple(mounts)


def _refuse_leaks(spec: ContainerSpec, withheld: Collection[str], *, allowed: str) -> None:
    """ContainerSpecError if any withheld secret appears anywhere in the parameters."""
    watched = [value for value in withheld if len(value) >= MIN_LENGTH and value != allowed]
    if not watched:
        return
    places: list[tuple[str, str]] = [(f"env {key}", value) for key, value in spec.env]
    places += [(f"label {key}", f"{key}={value}") for key, value in spec.labels.items()]
    places += [(f"mount {m.target}", m.source) for m in spec.mounts]
    places += [("image", spec.image), ("name", spec.name)]
    places += [("command", arg) for arg in spec.command]
    for where, text in places:
        if any(value in text for value in watched):
            raise ContainerSpecError(
                f"worker {spec.worker}: the container's {where} holds a secret from the "
                "secrets file that is not the worker's own token (not shown)",
                hint="workers get their LLM credential only (docker.token); remove the "
                "other secret from the worker file",
            )
