"""A parsed YAML document → a checked WorkerSpec, or every mistake at its file:line:column.

Steps: substitute ``${VAR}`` in the fields where users put URLs, paths and keys; check
shape and types (pydantic, unknown keys refused with the closest valid key suggested);
then the rules that join fields (exactly one kind, credentials vs token, expose needs
api_key, reserved env keys). All mistakes are gathered into one WorkerFileError.
Takes a Document and an environment mapping, does no I/O. Hints that name the secrets
file are written with ``SECRETS_FILE``; ``parse_worker`` puts in the one really in use.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from mecha.errors import Problem, WorkerFileError
from mecha.secrets import SECRETS_FILE
from mecha.template.interpolation import expand, has_reference, referenced
from mecha.worker.rules import cross_field_rules
from mecha.worker.spec import (
    RESERVED_ENV,
    AdapterSpec,
    DockerSpec,
    EventRule,
    Resources,
    WorkerSpec,
)
from mecha.yaml_doc import Document, Path, suggest_key

#: fields where ${VAR} is substituted: URLs, hosts, paths, images, models and keys ("*": any key)
EXPANDED: tuple[Path, ...] = (
    ("endpoint",),
    ("docker", "image"),
    ("docker", "host"),
    ("docker", "cwd"),
    ("docker", "api_key"),
    ("docker", "env", "*"),
    ("adapter", "upstream"),
    ("adapter", "model"),
    ("adapter", "api_key"),
)
#: fields that hold a key: never stored literally, never echoed in an error
SECRET_FIELDS: tuple[tuple[str, str], ...] = (("docker", "api_key"), ("adapter", "api_key"))

_SECTIONS: dict[Path, type[BaseModel]] = {
    (): WorkerSpec,
    ("docker",): DockerSpec,
    ("docker", "resources"): Resources,
    ("adapter",): AdapterSpec,
    ("events", "*"): EventRule,
}
_TYPE_WORDS = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false (unquoted)",
    "list_type": "must be a list, e.g. [a, b]",
    "dict_type": "must be a mapping of key: value lines",
    "model_type": "must be a mapping of key: value lines",
    "model_attributes_type": "must be a mapping of key: value lines",
}

_PLAIN = {
    "greater_than_equal": "must be {ge} or more",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
    "string_pattern_mismatch": "may hold only letters, digits, _ . - and must start with "
    "a letter or digit",
}


@dataclass(frozen=True)
class ParsedWorker:
    """A checked worker: the spec with variables substituted, and the data as written."""

    spec: WorkerSpec
    #: the mapping as written, ${VAR} references kept: what is stored
    written: dict[str, Any]
    #: things that work but deserve attention (e.g. a key written literally)
    warnings: tuple[Problem, ...] = ()


#: Mecha's own variables that hold a secret of Mecha's: no worker file may refer to them
#: (the name is config.database.URL_VARIABLE's; config sits above the worker in the layers)
WITHHELD_VARIABLES = frozenset({"MECHA_DATABASE_URL"})


def parse_worker(
    doc: Document, *, environ: Mapping[str, str], secrets_file: str = SECRETS_FILE
) -> ParsedWorker:
    """Check ``doc`` as a worker file; WorkerFileError lists every mistake found.

    ``secrets_file`` is the secrets file as hints should name it (``Settings.shown``).
    """
    if not isinstance(doc.data, dict):
        got = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise WorkerFileError(
            [
                Problem(
                    doc.where(()),
                    f"a worker file must be a mapping; this one is {got}",
                    "start with 'name: my-worker' and one of docker:, adapter: or endpoint:",
                )
            ]
        )
    data, problems, unexpanded = _expand_all(doc, environ)
    spec: WorkerSpec | None = None
    try:
        spec = WorkerSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(p for p in _problems(exc, doc, unexpanded))
    if spec is not None:
        problems.extend(cross_field_rules(spec, doc))
    if problems:
        problems.sort(key=lambda p: (p.location.line, p.location.column))
        raise WorkerFileError(_naming(problems, secrets_file))
    assert spec is not None
    warnings = tuple(_naming(_warnings(doc), secrets_file))
    return ParsedWorker(spec=spec, written=doc.data, warnings=warnings)


def _naming(problems: Iterable[Problem], secrets_file: str) -> list[Problem]:
    """``problems`` with their hints naming ``secrets_file`` instead of the default one."""
    return [
        dataclasses.replace(p, hint=p.hint.replace(SECRETS_FILE, secrets_file))
        if SECRETS_FILE in p.hint
        else p
        for p in problems
    ]


def _expand_all(
    doc: Document, environ: Mapping[str, str]
) -> tuple[dict[str, Any], list[Problem], set[Path]]:
    """A copy of the data with ${VAR} substituted, problems, and the paths left as written."""
    data = copy.deepcopy(doc.data)
    problems: list[Problem] = []
    failed: set[Path] = set()
    for path in _concrete_paths(data):
        parent = _get(data, path[:-1])
        value = parent.get(path[-1]) if isinstance(parent, dict) else None
        if not isinstance(value, str):
            continue
        if withheld := sorted(referenced(value) & WITHHELD_VARIABLES):
            failed.add(path)
            problems.append(
                Problem(
                    doc.where(path),
                    f"{_dotted(path)}: ${{{withheld[0]}}} holds Mecha's own database password; "
                    "a worker file may not read it",
                    "give the worker a variable of its own, or a token: from secrets.yml",
                )
            )
            continue
        try:
            parent[path[-1]] = expand(value, environ)
        except ValueError as exc:
            failed.add(path)
            problems.append(
                Problem(
                    doc.where(path),
                    f"{_dotted(path)}: {exc}",
                    "set it before running mecha, or write the value itself",
                )
            )
    return data, problems, failed


def _concrete_paths(data: dict[str, Any]) -> list[Path]:
    out: list[Path] = []
    for pattern in EXPANDED:
        if pattern[-1] == "*":
            parent = _get(data, pattern[:-1])
            if isinstance(parent, dict):
                out.extend((*pattern[:-1], key) for key in parent)
        else:
            out.append(pattern)
    return out


def _problems(exc: ValidationError, doc: Document, unexpanded: set[Path]) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc: Path = tuple(error["loc"])
        if loc in unexpanded:
            continue  # already reported: its ${VAR} could not be substituted
        problems.append(_problem(error, loc, doc))
    return problems


def _problem(error: Any, loc: Path, doc: Document) -> Problem:
    kind, ctx = error["type"], error.get("ctx") or {}
    field = _dotted(loc)
    if kind == "extra_forbidden":
        where = f" in {_dotted(loc[:-1])}" if loc[:-1] else ""
        return Problem(
            doc.where(loc, key=True),
            f'unknown key "{loc[-1]}"{where}',
            _suggest(str(loc[-1]), loc[:-1]),
        )
    if kind == "missing":
        under = f"under {_dotted(loc[:-1])}" if loc[:-1] else "at the top level"
        return Problem(
            doc.where(loc[:-1], key=True),
            f'"{loc[-1]}" is required {under}',
            f'add a line "{loc[-1]}: ..." {under}',
        )
    if kind == "mecha_invalid":
        return Problem(doc.where(loc), f"{field}: {ctx['message']}", ctx.get("hint", ""))
    return Problem(
        doc.where(loc),
        f"{field} {_wording(kind, ctx, error)}",
        f"found {_describe(error['input'])}",
    )


def _wording(kind: str, ctx: dict[str, Any], error: Any) -> str:
    """What a shape or type mistake means, in words: "must be a whole number"."""
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}"
    if kind in _PLAIN:
        values = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
        return _PLAIN[kind].format(**values)
    return _TYPE_WORDS.get(kind) or f"is not valid: {error['msg']}"


def _suggest(key: str, parent: Path) -> str:
    pattern = tuple("*" if isinstance(part, int) else part for part in parent)
    model = _SECTIONS.get(pattern)
    if model is None:
        return "remove it"
    return suggest_key(key, list(model.model_fields), listing="valid keys here")


def _warnings(doc: Document) -> list[Problem]:
    data = doc.data
    out = []
    for path in SECRET_FIELDS:
        value = _get(data, path)
        if isinstance(value, str) and value and not has_reference(value):
            section = path[0]
            out.append(
                Problem(
                    doc.where(path),
                    f"{_dotted(path)} is written into the file itself; Mecha will not store it "
                    "and reads it from this file each time the worker starts",
                    f"prefer {section}.api_key: ${{VAR}} or {section}.token: backend.name "
                    f"from {SECRETS_FILE}",
                )
            )
    env = _get(data, ("docker", "env"))
    if isinstance(env, dict):
        out.extend(_env_warnings(env, doc))
    return out


def _env_warnings(env: dict[str, Any], doc: Document) -> list[Problem]:
    out = []
    for key in env:
        if key.upper() in RESERVED_ENV:
            continue  # an error, reported by the rules
        if key.upper() in {"GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN", "GITHUB_PAT"}:
            out.append(
                Problem(
                    doc.where(("docker", "env", key), key=True),
                    f"docker.env.{key} gives the worker a forge token",
                    "Mecha writes results back itself; a worker rarely needs forge access",
                )
            )
    return out


def _get(data: Any, path: Path) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the file"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f'the text "{value}"' if len(value) < 60 else "a long text"
    return f"{value!r}"
