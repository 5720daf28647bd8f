"""Worker files on disk: finding them, reading them, checking them against this host,
and turning them into registry records (and back).

A registry record stores the worker as written, ``${VAR}`` references kept. A key
written literally into ``adapter.api_key`` or ``docker.api_key`` is withheld from the
database and read again from its file whenever the worker is resolved.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from mecha.errors import FileError, Location, Problem, UsageError, WorkerFileError
from mecha.policy.schema import policy_problems
from mecha.secrets import SECRETS_FILE
from mecha.template.interpolation import has_reference
from mecha.worker.parser import SECRET_FIELDS, ParsedWorker, parse_worker
from mecha.worker.record import WorkerRecord
from mecha.worker.rules import sensitive_path_reason
from mecha.worker.spec import CREDENTIAL_DIRS, WorkerSpec
from mecha.yaml_doc import Document, load_yaml

WORKER_SUFFIXES = (".yml", ".yaml")
MAX_FILE_BYTES = 1024 * 1024


def worker_paths(path: Path) -> list[Path]:
    """``path`` itself, or every *.yml / *.yaml directly inside it, sorted by name."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in WORKER_SUFFIXES and p.is_file())
        if not found:
            raise UsageError(
                f"no *.yml or *.yaml files in {path}",
                hint="point at a worker file, or a folder that has some",
            )
        return found
    if not path.exists():
        raise UsageError(f"{path} does not exist", hint="check the path")
    return [path]


def read_workers(
    paths: Iterable[Path], *, environ: Mapping[str, str], home: Path,
    secrets_file: str = SECRETS_FILE,
) -> list[ParsedWorker]:  # fmt: skip
    """Check every file; WorkerFileError lists the mistakes of all of them at once.

    ``secrets_file``: the secrets file as hints name it (``Settings.shown``).
    """
    parsed: list[ParsedWorker] = []
    problems: list[Problem] = []
    first_seen: dict[str, Location] = {}
    for path in paths:
        try:
            worker, doc = read_worker(path, environ=environ, home=home, secrets_file=secrets_file)
        except FileError as exc:
            problems.extend(exc.problems)
            continue
        name_at = doc.where(("name",))
        if worker.spec.name in first_seen:
            problems.append(
                Problem(
                    name_at,
                    f'worker name "{worker.spec.name}" is used twice',
                    f"the first is at {first_seen[worker.spec.name]}; rename one",
                )
            )
        first_seen.setdefault(worker.spec.name, name_at)
        parsed.append(worker)
    if problems:
        raise WorkerFileError(problems)
    return parsed


def read_worker(
    path: Path, *, environ: Mapping[str, str], home: Path, secrets_file: str = SECRETS_FILE
) -> tuple[ParsedWorker, Document]:
    """One worker file, checked as a file and against this host."""
    doc = _read_document(path)
    parsed = _parse(doc, environ, secrets_file)
    problems = host_problems(parsed.spec, doc, home=home)
    if problems:
        raise WorkerFileError(problems)
    return parsed, doc


def _parse(doc: Document, environ: Mapping[str, str], secrets_file: str) -> ParsedWorker:
    """``parse_worker``, with the mistakes in its policy added to its warnings."""
    parsed = parse_worker(doc, environ=environ, secrets_file=secrets_file)
    found = policy_warnings(parsed.spec.policy, doc)
    return dataclasses.replace(parsed, warnings=parsed.warnings + tuple(found)) if found else parsed


def policy_warnings(policy: Mapping[str, object], doc: Document) -> list[Problem]:
    """Each of ``policy_problems``, located in ``doc``; a fatal one says every action is denied.

    A file with a broken policy still loads (as upstream): its policy is then invalid.
    """
    warnings = []
    for problem in policy_problems(policy):
        where = doc.where(problem.keys, key=not problem.fatal)
        if not problem.fatal:
            warnings.append(Problem(where, str(problem)))
            continue
        message = f"{problem}; the policy is invalid and denies every action until this is fixed"
        hint = (
            "the worker still loads, but no comment, label, status or commit it returns is "
            "written back; see docs/policy.md"
        )
        warnings.append(Problem(where, message, hint))
    return warnings


def _read_document(path: Path) -> Document:
    where = Location(str(path), 1, 1)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise WorkerFileError(
                [
                    Problem(
                        where,
                        "file is larger than 1 MiB",
                        "a worker file is a few dozen lines; check the path",
                    )
                ]
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise WorkerFileError(
            [Problem(where, "file is not UTF-8 text", "save it as UTF-8")]
        ) from None
    except OSError as exc:
        raise WorkerFileError(
            [
                Problem(
                    where,
                    f"cannot read the file: {exc.strerror}",
                    "check the path and its permissions",
                )
            ]
        ) from None
    try:
        return load_yaml(text, file=str(path))
    except FileError as exc:
        raise WorkerFileError(list(exc.problems)) from None


def host_problems(spec: WorkerSpec, doc: Document, *, home: Path) -> list[Problem]:
    """What this host says about the file: the workspace folder and credential folders."""
    if spec.docker is None:
        return []
    problems = []
    if spec.docker.cwd:
        reason = _cwd_reason(spec.docker.cwd, home=home)
        if reason:
            problems.append(
                Problem(
                    doc.where(("docker", "cwd")),
                    f"docker.cwd {reason}",
                    "mount a project folder, e.g. /home/me/project",
                )
            )
    for i, name in enumerate(spec.docker.credentials):
        folder = home / CREDENTIAL_DIRS[name]
        if not folder.is_dir():
            problems.append(
                Problem(
                    doc.where(("docker", "credentials", i)),
                    f"credentials {name}: {folder} does not exist",
                    f"log in with the {name} CLI on this host first, or use token:",
                )
            )
    return problems


def _cwd_reason(cwd: str, *, home: Path) -> str:
    path = Path(home / cwd[2:] if cwd.startswith("~/") else home if cwd == "~" else cwd)
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return f'"{cwd}" does not exist'
    if not resolved.is_dir():
        return f'"{cwd}" is not a folder'
    reason = sensitive_path_reason(PurePosixPath(resolved), home=PurePosixPath(home.resolve()))
    shown = f'"{cwd}"' + (f" (→ {resolved})" if str(resolved) != cwd else "")
    return f"{shown} may not be mounted: {reason}" if reason else ""


def to_record(parsed: ParsedWorker, *, source: Path) -> WorkerRecord:
    """The registry record for a checked worker: as written, literal keys withheld."""
    written = copy.deepcopy(parsed.written)
    withheld = []
    for section, key in SECRET_FIELDS:
        part = written.get(section)
        if not isinstance(part, dict):
            continue
        value = part.get(key)
        if isinstance(value, str) and value and not has_reference(value):
            del part[key]
            withheld.append(f"{section}.{key}")
    return WorkerRecord(
        name=parsed.spec.name,
        kind=parsed.spec.kind,
        definition={"worker": written, "withheld": withheld},
        source=str(source.absolute()),
    )


def from_record(
    record: WorkerRecord, *, environ: Mapping[str, str], home: Path,
    secrets_file: str = SECRETS_FILE,
) -> ParsedWorker:  # fmt: skip
    """A registered worker checked again now: variables substituted, withheld keys re-read."""
    written = copy.deepcopy(record.definition.get("worker", {}))
    withheld = record.definition.get("withheld", [])
    if withheld:
        _restore_withheld(written, withheld, record)
    doc = Document(data=written, file=f"{record.source or record.name} (registered)")
    parsed = _parse(doc, environ, secrets_file)
    problems = host_problems(parsed.spec, doc, home=home)
    if problems:
        raise WorkerFileError(problems)
    return parsed


def _restore_withheld(written: dict[str, Any], withheld: list[str], record: WorkerRecord) -> None:
    source = Path(record.source)
    hint = (
        f"restore {source}, or re-add the worker with `mecha worker add`; better, "
        "write the key as ${VAR} or use token: so it does not live in the file"
    )
    try:
        doc = load_yaml(source.read_text(encoding="utf-8"), file=str(source))
    except (OSError, UnicodeDecodeError, FileError):
        raise WorkerFileError(
            [
                Problem(
                    Location(str(source), 1, 1),
                    f"worker {record.name}'s key is read from this file, "
                    "which can no longer be read",
                    hint,
                )
            ]
        ) from None
    data = doc.data if isinstance(doc.data, dict) else {}
    if data.get("name") != record.name:
        raise WorkerFileError(
            [
                Problem(
                    doc.where(("name",)), f"this file no longer defines worker {record.name}", hint
                )
            ]
        )
    for dotted in withheld:
        section, key = dotted.split(".", 1)
        value = (data.get(section) or {}).get(key)
        if isinstance(value, str) and value and isinstance(written.get(section), dict):
            written[section][key] = value
