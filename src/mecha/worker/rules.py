"""Rules that join several fields of a worker file, and the sensitive-path deny-list.

Each rule returns Problems that point at the key a user has to change. The filesystem
side of ``docker.cwd`` (does it exist, where do its symlinks lead) is checked by
``mecha.worker.files``; ``sensitive_path_reason`` here decides on the resolved path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath

from mecha.errors import Problem
from mecha.redaction import looks_like_token
from mecha.secrets import SECRETS_FILE
from mecha.worker.spec import RESERVED_ENV, DockerSpec, WorkerSpec
from mecha.yaml_doc import Document

#: system folders a workspace may never be (nor lie under)
SYSTEM_DIRS = ("/etc", "/proc", "/sys", "/dev", "/boot")
#: folders under the home folder that hold credentials or Mecha's own state
HOME_SECRET_DIRS = (
    ".mecha",
    ".ssh",
    ".gnupg",
    ".aws",
    ".config/gcloud",
    ".claude",
    ".codex",
    ".gemini",
    ".docker",
    ".kube",
)


def cross_field_rules(spec: WorkerSpec, doc: Document) -> list[Problem]:
    """Every rule that needs more than one field, as Problems."""
    problems = list(_kind_rules(spec, doc))
    problems.extend(_cron_rules(spec, doc))
    if spec.docker is not None:
        problems.extend(_docker_rules(spec.docker, doc))
    return problems


def _cron_rules(spec: WorkerSpec, doc: Document) -> Iterator[Problem]:
    """Two cron rules of a worker with one subject would tick as one (name:subject:time)."""
    seen: dict[str, int] = {}
    for index, rule in enumerate(spec.events):
        if rule.source != "cron":
            continue
        if rule.subject in seen:
            yield Problem(
                doc.where(("events", index, "subject")),
                f'two cron rules have the subject "{rule.subject}" '
                f"(rules {seen[rule.subject] + 1} and {index + 1}): their ticks would be one",
                "give each cron rule its own subject:",
            )
        seen.setdefault(rule.subject, index)


def _kind_rules(spec: WorkerSpec, doc: Document) -> Iterator[Problem]:
    present = [key for key in ("docker", "adapter", "endpoint") if getattr(spec, key)]
    if not present:
        yield Problem(
            doc.where(("name",), key=True),
            "the worker has no kind: none of docker:, adapter: or endpoint: is present",
            "add docker: (a container Mecha runs), adapter: (Ollama or an OpenAI-style API) "
            "or endpoint: (a URL you run)",
        )
    elif len(present) > 1:
        second = present[1]
        yield Problem(
            doc.where((second,), key=True),
            f"a worker is one kind, but this file has both {present[0]}: and {second}:",
            f"keep one; a {present[0]} worker's address is found by Mecha, remove {second}:"
            if second == "endpoint"
            else f"split it into two worker files, one with {present[0]}: and one with {second}:",
        )


def _docker_rules(docker: DockerSpec, doc: Document) -> Iterator[Problem]:
    if docker.credentials and docker.token:
        yield Problem(
            doc.where(("docker", "token"), key=True),
            "docker.credentials and docker.token both give the worker its model login",
            "keep one: credentials mounts ~/.claude or ~/.codex, token injects a key",
        )
    seen: set[str] = set()
    for i, name in enumerate(docker.credentials):
        if name in seen:
            yield Problem(
                doc.where(("docker", "credentials", i)),
                f'credentials lists "{name}" twice',
                "list each once",
            )
        seen.add(name)
    if docker.pool and docker.lifecycle != "disposable":
        yield Problem(
            doc.where(("docker", "pool"), key=True),
            "docker.pool keeps spare containers for disposable workers only",
            "set docker.lifecycle: disposable, or remove pool",
        )
    if docker.expose and not docker.api_key:
        yield Problem(
            doc.where(("docker", "expose"), key=True),
            "docker.expose: true publishes the worker on every interface without a key",
            "set docker.api_key: ${WORKER_KEY} so only Mecha can send it tasks",
        )
    yield from _env_rules(docker, doc)


def _env_rules(docker: DockerSpec, doc: Document) -> Iterator[Problem]:
    disposable = docker.lifecycle == "disposable"
    raw_env = (doc.data.get("docker") or {}).get("env") or {} if isinstance(doc.data, dict) else {}
    for key in docker.env:
        upper = key.upper()
        if upper in RESERVED_ENV or (disposable and upper.startswith("WORKER_")):
            yield Problem(
                doc.where(("docker", "env", key), key=True),
                f"docker.env.{key} is set by Mecha itself and cannot be overridden",
                f"remove it; reserved: {', '.join(sorted(RESERVED_ENV))}"
                + (" and every WORKER_* for disposable workers" if disposable else ""),
            )
        written = raw_env.get(key) if isinstance(raw_env, dict) else None
        if isinstance(written, str) and "${" not in written and looks_like_token(written):
            yield Problem(
                doc.where(("docker", "env", key)),
                f"docker.env.{key} holds a token written into the file",
                f"use docker.token: backend.name (from {SECRETS_FILE}) or ${{VAR}}",
            )


def sensitive_path_reason(resolved: PurePosixPath, *, home: PurePosixPath) -> str:
    """Why ``resolved`` must not be a workspace, or "" if it may be."""
    for system in SYSTEM_DIRS:
        if resolved == PurePosixPath(system) or resolved.is_relative_to(system):
            return f"it is the system folder {system} or lies under it"
    if resolved == PurePosixPath("/"):
        return "it is the root folder"
    for top in (home, PurePosixPath("/root")):
        if resolved == top:
            return f"it is the home folder {top} itself"
        for name in HOME_SECRET_DIRS:
            secret = top / name
            if resolved == secret or resolved.is_relative_to(secret):
                return f"it is {secret} or lies under it, which holds credentials"
    return ""
