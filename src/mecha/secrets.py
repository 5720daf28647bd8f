"""The secrets file (``~/.mecha/secrets.yml``): its shape, references, and token env vars.

``parse_secrets`` turns the file's text into a frozen ``Secrets``, or one SecretsFileError
listing every mistake at file:line:column; ``check_secrets_mode`` refuses a file that other
users may read; ``Secrets.resolve`` turns a reference like ``claude.default`` into a value;
``token_env_var`` says which environment variable a token goes into. Takes text and
numbers, does no I/O. No message here ever holds a secret value: errors name the key
(``tokens.claude.default``), and a key that looks like a token is not shown either.
"""

from __future__ import annotations

import re
import shlex
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from mecha.errors import FileError, Problem, SecretsError, SecretsFileError
from mecha.redaction import TOKEN_PREFIXES
from mecha.yaml_doc import Document, Path, load_yaml, suggest_key

#: backend, token and source names: what a reference ``backend.name`` can address
NAME = re.compile(r"[A-Za-z0-9_-]+")
_SECTIONS = ("tokens", "github", "gitlab", "slack", "telegram", "sources")
#: section -> key -> kind: "one" secret, "many" (text or a list of texts), a "url", an "id"
#: (a number or digits), a "pem" private key, or a "path" (plain text, not a secret)
_FIELDS: dict[str, dict[str, str]] = {
    "github": {
        "token": "one",
        "webhook_secret": "many",
        "app_id": "id",
        "private_key": "pem",
        "private_key_path": "path",
    },
    "gitlab": {"token": "one", "url": "url", "webhook_secret": "many", "signing_token": "many"},
    "slack": {"signing_secret": "one"},
    "telegram": {"secret_token": "one"},
}
#: YAML key -> dataclass field, where they differ
_ATTR = {"webhook_secret": "webhook_secrets", "signing_token": "signing_tokens"}
_KINDS: dict[type, str] = {bool: "true/false", int: "a number", float: "a number", str: "text"}
_KINDS.update({list: "a list", dict: "a mapping"})
#: the secrets file as hints name it when no other is known (``Settings.shown`` gives the real one)
SECRETS_FILE = "~/.mecha/secrets.yml"
_REF_HINT = "write it as backend.name, e.g. claude.default (a key under tokens: in secrets.yml)"
_PREFIX_HINT = (
    "recognised prefixes: sk-ant-oat (CLAUDE_CODE_OAUTH_TOKEN), sk-ant- (ANTHROPIC_API_KEY), "
    "sk- (CODEX_API_KEY; OPENAI_API_KEY for backend openai), AIza (GEMINI_API_KEY)"
)
_TEXT_HINT = 'write it as text; quote it ("…") if YAML would read a number or true/false'
_EMPTY_HINT = "write the value after the colon, or remove the line"
_DOT_HINT = 'a reference splits at the first ".", so a name cannot hold one; use "-" or "_"'
_PEM_HINT = "paste the whole PEM file as a block (private_key: |), or use private_key_path"


@dataclass(frozen=True)
class GitHubSecrets:
    """GitHub: a token or a GitHub App (id and private key) for the API, and webhook secrets."""

    token: str = field(default="", repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    app_id: str = ""
    #: the App's private key, PEM text
    private_key: str = field(default="", repr=False)
    #: or the file that holds it
    private_key_path: str = ""


@dataclass(frozen=True)
class GitLabSecrets:
    """GitLab: API token and URL, accepted webhook secrets and signing tokens."""

    token: str = field(default="", repr=False)
    url: str = ""
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    signing_tokens: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True, repr=False)
class Secrets:
    """Everything in the secrets file; its repr shows names, never values."""

    tokens: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    github: GitHubSecrets = field(default_factory=GitHubSecrets)
    gitlab: GitLabSecrets = field(default_factory=GitLabSecrets)
    slack_signing_secret: str = ""
    telegram_secret_token: str = ""
    #: ours: per generic webhook source name, its secrets (e.g. ``{secret: ...}``)
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: the file these came from (or would have), as hints name it
    file: str = field(default=SECRETS_FILE, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", _freeze(self.tokens))
        object.__setattr__(self, "sources", _freeze(self.sources))

    def __repr__(self) -> str:
        tokens = {_part(b): [_part(n) for n in sorted(names)] for b, names in self.tokens.items()}
        sources = {_part(s): [_part(k) for k in sorted(keys)] for s, keys in self.sources.items()}
        return f"Secrets(tokens={tokens}, sources={sources}, values={len(self.values())})"

    @classmethod
    def empty(cls) -> Secrets:
        """No secrets at all: what a missing or empty file means."""
        return cls()

    def values(self) -> frozenset[str]:
        """Every secret value in the file, for the redactor."""
        found = [value for names in self.tokens.values() for value in names.values()]
        found += [value for keys in self.sources.values() for value in keys.values()]
        found += [self.github.token, *self.github.webhook_secrets, self.github.private_key]
        found += [self.gitlab.token]
        found += [*self.gitlab.webhook_secrets, *self.gitlab.signing_tokens]
        found += [self.slack_signing_secret, self.telegram_secret_token]
        return frozenset(value for value in found if value)

    def resolve(self, ref: str) -> str:
        """The token that ``backend.name`` refers to; SecretsError saying why not."""
        backend, name = parse_reference(ref, secrets_file=self.file)
        if not self.tokens:
            what = "no secrets are loaded" if not self.values() else "there is no tokens: section"
            raise SecretsError(
                f"cannot resolve secret {_shown(ref)}: {what}",
                hint=f"create {self.file} (chmod 600) with a tokens: section, "
                "e.g. tokens: {claude: {default: <your token>}}",
            )
        names = self.tokens.get(backend)
        if names is None:
            raise SecretsError(
                f"cannot resolve secret {_shown(ref)}: no tokens for backend {_shown(backend)}",
                hint=f"backends in the secrets file: {_listing(self.tokens)}; "
                f"add tokens.{_part(backend)}.{_part(name)} there or use one of those",
            )
        if name not in names:
            raise SecretsError(
                f"cannot resolve secret {_shown(ref)}: backend {_shown(backend)} "
                f"has no token named {_shown(name)}",
                hint=f"names under tokens.{_part(backend)}: {_listing(names)}",
            )
        return names[name]


def parse_secrets(text: str, *, file: str) -> Secrets:
    """Check ``text`` as a secrets file; SecretsFileError lists every mistake found."""
    try:
        doc = load_yaml(text, file=file)
    except FileError as exc:
        raise SecretsFileError(list(exc.problems)) from None
    if doc.data is None:
        return Secrets.empty()
    check = _Checker(doc)
    data = check.known((), check.mapping((), doc.data), _SECTIONS)
    sections = {name: check.section(name, data.get(name)) for name in _FIELDS}
    tokens = check.nested("tokens", data.get("tokens"), ("backend", "token"))
    sources = check.nested("sources", data.get("sources"), ("source", "secret"))
    check.github_app(sections["github"])
    if check.problems:
        raise SecretsFileError(
            sorted(check.problems, key=lambda p: (p.location.line, p.location.column))
        )
    return Secrets(
        tokens=tokens,
        github=GitHubSecrets(**sections["github"]),
        gitlab=GitLabSecrets(**sections["gitlab"]),
        slack_signing_secret=sections["slack"].get("signing_secret", ""),
        telegram_secret_token=sections["telegram"].get("secret_token", ""),
        sources=sources,
    )


def check_secrets_mode(
    mode: int, *, path: str, what: str = "the secrets file", other_fix: str = ""
) -> None:
    """Refuse a file holding secrets that its group or other users may read, write or run.

    ``what`` names the file in the message (``config.yml`` holding a literal ``api_key``);
    ``other_fix`` is a way out besides ``chmod 600``, for the hint.
    """
    if mode & 0o077:
        raise SecretsError(
            f"{path} is open to other users (mode {stat.S_IMODE(mode):04o}); "
            f"{what} must be readable by its owner only",
            hint=f"chmod 600 {shlex.quote(path)}" + (f", or {other_fix}" if other_fix else ""),
        )


def parse_reference(ref: str, *, secrets_file: str = SECRETS_FILE) -> tuple[str, str]:
    """``backend.name`` split at the first '.'; SecretsError if it is not one."""
    backend, dot, name = ref.partition(".")
    if not dot and _looks_secret(ref):
        raise SecretsError(
            "a secret reference holds what looks like a token itself (not shown)",
            hint=f"put the token in {secrets_file} under tokens: and refer to it here; {_REF_HINT}",
        )
    if not dot or not backend or not name:
        raise SecretsError(
            f"secret reference {_shown(ref)} is not of the form backend.name", hint=_REF_HINT
        )
    for part, what in ((backend, "backend"), (name, "name")):
        if not NAME.fullmatch(part):
            raise SecretsError(
                f"the {what} in secret reference {_shown(ref)} may only hold "
                'letters, digits, "-" and "_"',
                hint=_REF_HINT,
            )
    return backend, name


def token_env_var(value: str, *, backend: str = "") -> str:
    """The environment variable a token goes into, chosen by its prefix."""
    if value.startswith("sk-ant-oat"):
        return "CLAUDE_CODE_OAUTH_TOKEN"
    if value.startswith("sk-ant-"):
        return "ANTHROPIC_API_KEY"
    if value.startswith("sk-"):
        return "OPENAI_API_KEY" if backend == "openai" else "CODEX_API_KEY"
    if value.startswith("AIza"):
        return "GEMINI_API_KEY"
    whose = f" for backend {_shown(backend)}" if backend else ""
    raise SecretsError(f"unknown token format{whose} (value not shown)", hint=_PREFIX_HINT)


class _Checker:
    """Walks the parsed file, gathering a Problem for each mistake."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def add(self, path: Path, message: str, hint: str, *, key: bool = False) -> None:
        self.problems.append(Problem(self.doc.where(path, key=key), message, hint))

    def mapping(self, path: Path, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        if value is not None:
            where = _dotted(path) or "the secrets file"
            message = f"{where} must be a mapping of key: value lines, found {_describe(value)}"
            self.add(path, message, "write one key: value per line under it")
        return {}

    def known(self, path: Path, data: dict[str, Any], valid: tuple[str, ...]) -> dict[str, Any]:
        for key in data:
            if key not in valid:
                hint = suggest_key(key, valid)
                where = f"under {_dotted(path)}" if path else "at the top of the secrets file"
                self.add((*path, key), f"unknown key {_shown(key)} {where}", hint, key=True)
        return {key: value for key, value in data.items() if key in valid}

    def name(self, path: Path, what: str) -> bool:
        name = str(path[-1])
        if NAME.fullmatch(name):
            return True
        hint = _DOT_HINT if "." in name else 'rename it, e.g. "default" or "my-token"'
        message = f'{what} name {_shown(name)} may only hold letters, digits, "-" and "_"'
        self.add(path, message, hint, key=True)
        return False

    def text(self, path: Path, value: Any) -> str:
        if isinstance(value, str) and value:
            return value
        if value is None or value == "":
            self.add(path, f"{_dotted(path)} is empty", _EMPTY_HINT)
        else:
            self.add(path, f"{_dotted(path)} must be text, found {_describe(value)}", _TEXT_HINT)
        return ""

    def texts(self, path: Path, value: Any) -> tuple[str, ...]:
        if isinstance(value, list) and value:
            return tuple(self.text((*path, i), item) for i, item in enumerate(value))
        if isinstance(value, dict):
            message = f"{_dotted(path)} must be text or a list of texts, found a mapping"
            self.add(path, message, "write one secret, or several as a list: [first, second]")
            return ()
        return (self.text(path, None if value == [] else value),)

    def url(self, path: Path, value: Any) -> str:
        url = self.text(path, value)
        if url and not url.startswith(("http://", "https://")):
            self.add(path, f"{_dotted(path)} is not an http(s) URL", "e.g. https://gitlab.com")
            return ""
        return url

    def ident(self, path: Path, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return str(value)
        if isinstance(value, str) and value.isdigit():
            return value
        found = "nothing" if value is None or value == "" else _describe(value)
        found = str(value) if isinstance(value, int) and not isinstance(value, bool) else found
        message = f"{_dotted(path)} must be a GitHub App id (a positive number), found {found}"
        self.add(path, message, "e.g. app_id: 123456")
        return ""

    def pem(self, path: Path, value: Any) -> str:
        key = self.text(path, value)
        if key and not (key.lstrip().startswith("-----BEGIN") and "PRIVATE KEY" in key):
            self.add(path, f"{_dotted(path)} is not a PEM private key (not shown)", _PEM_HINT)
            return ""
        return key

    def github_app(self, github: dict[str, Any]) -> None:
        keys = [key for key in ("private_key", "private_key_path") if key in github]
        if len(keys) == 2:
            message = "github.private_key and github.private_key_path are both set"
            self.add(("github", "private_key_path"), message, "keep one of them", key=True)
        if "app_id" in github and not keys:
            message = "github.app_id needs github.private_key or github.private_key_path"
            self.add(("github", "app_id"), message, _PEM_HINT, key=True)
        if keys and "app_id" not in github:
            message = f"github.{keys[0]} needs github.app_id (the GitHub App's id)"
            self.add(("github", keys[0]), message, "add app_id: <number>", key=True)

    def section(self, section: str, value: Any) -> dict[str, Any]:
        spec = _FIELDS[section]
        data = self.known((section,), self.mapping((section,), value), tuple(spec))
        read: dict[str, Callable[[Path, Any], Any]] = {
            "one": self.text,
            "many": self.texts,
            "url": self.url,
            "id": self.ident,
            "pem": self.pem,
            "path": self.text,
        }
        return {_ATTR.get(key, key): read[spec[key]]((section, key), v) for key, v in data.items()}

    def nested(self, section: str, value: Any, what: tuple[str, str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for outer, inner in self.mapping((section,), value).items():
            path = (section, outer)
            valid = self.name(path, what[0])
            entries: dict[str, str] = {}
            for key, item in self.mapping(path, inner).items():
                named = self.name((*path, key), what[1])
                secret = self.text((*path, key), item)
                if named and secret:
                    entries[key] = secret
            if valid:
                out[outer] = entries
        return out


def _freeze(table: Mapping[str, Mapping[str, str]]) -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType({key: MappingProxyType(dict(inner)) for key, inner in table.items()})


def _looks_secret(text: str) -> bool:
    return text.startswith(TOKEN_PREFIXES) or len(text) > 40


def _part(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return "<not shown>" if _looks_secret(part) else part


def _shown(text: str) -> str:
    return "(not shown: it looks like a secret)" if _looks_secret(text) else f'"{text}"'


def _dotted(path: Path) -> str:
    return ".".join(_part(part) for part in path).replace(".[", "[")


def _listing(names: Mapping[str, Any]) -> str:
    return ", ".join(_part(name) for name in sorted(names)) or "none"


def _describe(value: Any) -> str:
    return _KINDS.get(type(value), f"a {type(value).__name__}")
