"""Which database Mecha uses: SQLite at ``MECHA_DB_PATH``, or PostgreSQL at a URL.

``MECHA_DATABASE_URL`` in the environment wins over ``database_url:`` in config.yml;
with neither, SQLite at ``MECHA_DB_PATH`` (``~/.mecha/mecha.db``) as always. The URL is
``postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?libpq options]`` (``postgres://`` too).
Its password may be

- in the URL: written into ``MECHA_DATABASE_URL``, or in config.yml as ``${VAR}``
  (expanded from the environment) or literally (config.yml must then be chmod 600, as
  secrets.yml is);
- or in secrets.yml: ``database_password: postgres.main`` in config.yml refers to
  ``tokens: {postgres: {main: <password>}}``, the ``backend.name`` references a worker's
  ``token:`` uses;
- or nowhere, for libpq's own ``PGPASSWORD`` / ``~/.pgpass``.

The password is never part of what is shown (``PostgresTarget.shown``); every form of it
is given to the KnownSecrets (``secret_values``), so no text carrying it is printed,
logged or stored unmasked. Mistakes are ConfigErrors naming where (the variable, or
config.yml:line:column) and what to write. Pure: text in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from mecha.errors import ConfigError, MechaError, Problem
from mecha.template.interpolation import UnsetVariable, expand

if TYPE_CHECKING:
    from mecha.secrets import Secrets
    from mecha.yaml_doc import Document

#: the environment variable that names a PostgreSQL database (it wins over config.yml)
URL_VARIABLE = "MECHA_DATABASE_URL"
URL_KEY = "database_url"
PASSWORD_KEY = "database_password"  # noqa: S105 (a key's name)
SCHEMES = ("postgresql", "postgres")
URL_HINT = "write it as postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME, e.g. " \
    "postgresql://mecha@db.internal:5432/mecha"  # fmt: skip
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, kw_only=True)
class PostgresTarget:
    """A PostgreSQL database to connect to; its repr and ``shown`` hold no password."""

    user: str = ""
    password: str = field(default="", repr=False)
    #: ``host[:port]``, several separated by commas (libpq's failover list); "" = local socket
    hosts: str = ""
    dbname: str
    #: the URL's other libpq options (sslmode, …), password taken out
    options: tuple[tuple[str, str], ...] = ()
    #: where the URL was given: ``MECHA_DATABASE_URL`` or ``config.yml:3:15``
    origin: str = ""
    #: where the password came from ("" if none: libpq's PGPASSWORD or ~/.pgpass may give it)
    password_from: str = ""
    #: the password as written in the URL (percent-encoded), if it was written there
    written_password: str = field(default="", repr=False)

    @property
    def shown(self) -> str:
        """``postgresql://mecha@db:5432/mecha``: enough to recognise it (port 5432 unless
        given), no password."""
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        return f"postgresql://{user}{self._ported()}/{self.dbname}"

    @property
    def where(self) -> str:
        """``host:port/db`` for one-line reports."""
        return f"{self._ported() or 'local socket'}/{self.dbname}"

    def _ported(self) -> str:
        return ",".join(_with_port(spec) for spec in self.hosts.split(",") if spec)

    def url(self) -> str:
        """The URL to connect with, password included: for the driver only, never shown."""
        user = quote(self.user, safe="")
        if self.password:
            user += ":" + quote(self.password, safe="")
        userinfo = f"{user}@" if user else ""
        query = f"?{urlencode(self.options)}" if self.options else ""
        return f"postgresql://{userinfo}{self.hosts}/{quote(self.dbname, safe='')}{query}"

    def secret_values(self) -> frozenset[str]:
        """Every form of the password that a text could carry, for the KnownSecrets."""
        found = {self.password, self.written_password, quote(self.password, safe="")}
        return frozenset(value for value in found if value)


@dataclass(frozen=True, kw_only=True)
class Database:
    """The store Mecha uses: SQLite at ``path``, or the PostgreSQL ``postgres`` names."""

    path: Path
    postgres: PostgresTarget | None = None

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self.postgres is None else "postgresql"

    def secret_values(self) -> frozenset[str]:
        """The password's forms (none for SQLite)."""
        return frozenset() if self.postgres is None else self.postgres.secret_values()


class UrlProblem(ValueError):
    """What is wrong with a database URL (the message never quotes the URL)."""

    def __init__(self, message: str, hint: str = URL_HINT) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def parse_url(text: str, *, origin: str) -> PostgresTarget:
    """``text`` as a PostgreSQL URL; UrlProblem saying what is wrong, without quoting it."""
    url = text.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UrlProblem("is not a URL (it has no scheme://)")
    if scheme.lower() not in SCHEMES:
        shown = scheme if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,20}", scheme) else "(not shown)"
        raise UrlProblem(
            f'has the scheme "{shown}"; Mecha stores in PostgreSQL (postgresql://) or in '
            "SQLite (no URL at all)",
            hint=f"{URL_HINT}; for SQLite leave it unset and set MECHA_DB_PATH=FILE if you "
            "want the file elsewhere",
        )
    if "#" in rest:
        raise UrlProblem('holds a "#"; write it as %23 inside the password')
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    user, colon, written = userinfo.partition(":")
    _check_hosts(hosts)
    dbname = unquote(path.rstrip("/")) if slash else ""
    if not dbname or "/" in dbname:
        raise UrlProblem("names no database: it must end in /DBNAME after the host")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise UrlProblem("has a malformed ?query: write ?key=value&key=value") from None
    options = tuple((key, value) for key, value in pairs if key != "password")
    in_query = [value for key, value in pairs if key == "password"]
    password = unquote(written) if colon else ""
    if in_query:
        if password:
            raise UrlProblem("gives the password twice (after the user and as ?password=)")
        password = in_query[-1]
    return PostgresTarget(
        user=unquote(user), password=password, hosts=hosts, dbname=dbname, options=options,
        origin=origin, password_from=f"the URL ({origin})" if password else "",
        written_password=written if colon else "",
    )  # fmt: skip


def _with_port(spec: str) -> str:
    """``db`` → ``db:5432``; ``[::1]`` → ``[::1]:5432``; a given port is kept."""
    tail = spec.rpartition("]")[2] if spec.startswith("[") else spec
    return spec if ":" in tail else f"{spec}:5432"


def _check_hosts(hosts: str) -> None:
    for spec in hosts.split(",") if hosts else ():
        if spec.startswith("["):
            host, close, port = spec[1:].partition("]")
            port = port.removeprefix(":") if close else ""
            if not close or not host:
                raise UrlProblem("has a malformed [IPv6] host")
        else:
            host, _, port = spec.partition(":")
            if not host:
                raise UrlProblem("has an empty host name before a port or comma")
        if port and not (_PORT.fullmatch(port) and 1 <= int(port) <= 65535):
            raise UrlProblem(
                f'has the port "{port[:8]}"; a port is a number from 1 to 65535', hint=URL_HINT
            )


# ------------------------------------------------------------------ config.yml's two keys


@dataclass(frozen=True, kw_only=True)
class DatabaseKeys:
    """What config.yml says about the database (both keys optional)."""

    #: the URL, ${VAR}s expanded (may hold the password)
    url: str = field(default="", repr=False)
    url_at: str = ""
    #: ``backend.name``: the password is ``tokens.backend.name`` in secrets.yml
    password_ref: str = ""
    password_at: str = ""
    #: the file's own text gives a password (not only ${VAR}): the file must be private
    literal: bool = False
    target: PostgresTarget | None = None


class _BlankEnvironment(dict[str, str]):
    """Every variable set and empty: what the file's own text gives, without the environment."""

    def get(self, key: str, default: Any = None) -> str:
        return ""


def check_keys(
    doc: Document, data: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[DatabaseKeys, list[Problem]]:
    """``database_url`` and ``database_password`` of config.yml's ``data``, checked in place."""
    problems: list[Problem] = []

    def add(key: str, message: str, hint: str) -> None:
        problems.append(Problem(doc.where((key,)), message, hint))

    url_at = str(doc.where((URL_KEY,))) if URL_KEY in data else ""
    password_at = str(doc.where((PASSWORD_KEY,))) if PASSWORD_KEY in data else ""
    raw = data.get(URL_KEY)
    url, target = _check_url(raw, environ, url_at, add)
    ref = _check_ref(data.get(PASSWORD_KEY), add)
    if target is not None and target.password and ref:
        add(
            PASSWORD_KEY, f"{PASSWORD_KEY} is set, but {URL_KEY} holds a password too",
            f"keep one: remove the password from {URL_KEY}, or remove {PASSWORD_KEY}",
        )  # fmt: skip
    keys = DatabaseKeys(
        url=url, url_at=url_at, password_ref=ref, password_at=password_at,
        literal=isinstance(raw, str) and target is not None and _literal_password(raw),
        target=target,
    )  # fmt: skip
    return keys, problems


def _check_url(
    raw: Any, environ: Mapping[str, str], url_at: str, add: Callable[[str, str, str], None]
) -> tuple[str, PostgresTarget | None]:
    if raw is None or raw == "":
        return "", None
    if not isinstance(raw, str):
        add(URL_KEY, f"{URL_KEY} must be text", URL_HINT)
        return "", None
    try:
        url = expand(raw, environ)
    except UnsetVariable as exc:
        add(URL_KEY, f"{URL_KEY} uses ${{{exc.name}}}, which is not set", "export it")
        return "", None
    except ValueError as exc:
        add(URL_KEY, f"{URL_KEY}: {exc}", "write ${NAME}, ${NAME:-fallback} or $$")
        return "", None
    try:
        return url, parse_url(url, origin=url_at)
    except UrlProblem as exc:
        expanded = " (after expanding ${...})" if "$" in raw else ""
        add(URL_KEY, f"{URL_KEY}{expanded} {exc.message}", exc.hint)
        return "", None


def _check_ref(ref: Any, add: Callable[[str, str, str], None]) -> str:
    if ref is None:
        return ""
    if not isinstance(ref, str) or not ref:
        add(PASSWORD_KEY, f"{PASSWORD_KEY} must be a reference backend.name", _REF_HINT)
        return ""
    from mecha.secrets import parse_reference

    try:
        parse_reference(ref)
    except MechaError as exc:
        add(PASSWORD_KEY, f"{PASSWORD_KEY}: {exc.message}", _REF_HINT)
        return ""
    return ref


_REF_HINT = (
    "e.g. database_password: postgres.main, with tokens: {postgres: {main: <password>}} "
    "in secrets.yml"
)


def _literal_password(raw: str) -> bool:
    """Whether config.yml's own text gives the password (not only a ${VAR})."""
    try:
        text = expand(raw, _BlankEnvironment())
        return bool(parse_url(text, origin="").password)
    except (ValueError, UrlProblem):
        return False


# ------------------------------------------------------------------------- the choice


def choose(
    *,
    db_path: Path,
    env_url: str,
    keys: DatabaseKeys,
    secrets: Callable[[], Secrets],
) -> Database:
    """The database from the environment's URL, else config.yml's; SQLite if neither.

    ``secrets`` is called only when a password reference must be resolved.
    """
    if env_url.strip():
        try:
            target = parse_url(env_url, origin=URL_VARIABLE)
        except UrlProblem as exc:
            raise ConfigError(f"{URL_VARIABLE} {exc.message}", hint=exc.hint) from None
    elif keys.target is not None:
        target = keys.target
    else:
        return Database(path=db_path)
    if keys.password_ref:
        if target.password:
            raise ConfigError(
                f"{URL_VARIABLE} holds a password, and {keys.password_at} sets {PASSWORD_KEY} too",
                hint=f"keep one: remove the password from {URL_VARIABLE}, or {PASSWORD_KEY} "
                "from config.yml",
            )
        target = _with_secret(target, keys, secrets)
    return Database(path=db_path, postgres=target)


def _with_secret(
    target: PostgresTarget, keys: DatabaseKeys, secrets: Callable[[], Secrets]
) -> PostgresTarget:
    from dataclasses import replace

    from mecha.errors import SecretsError

    try:
        password = secrets().resolve(keys.password_ref)
    except SecretsError as exc:
        raise ConfigError(
            f"{keys.password_at}: {PASSWORD_KEY}: {exc.message}", hint=exc.hint
        ) from None
    return replace(
        target, password=password, password_from=f"secrets.yml (tokens.{keys.password_ref})"
    )
