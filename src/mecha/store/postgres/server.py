"""The PostgreSQL server a store talks to: where it is (never the password), and every
psycopg error explained as a StoreError that says what to do.

``Server`` is parsed from the URL once; its ``str`` is ``host:port/database`` and is what
errors, logs and ``repr`` show. The password of the URL never leaves ``conninfo``: every
message made here is also scrubbed of it, in case a library quotes the URL back.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import errors as pg_errors
from psycopg_pool import PoolClosed, PoolTimeout

from mecha.errors import StoreError
from mecha.store.common import closed

#: seconds a new connection may take before it fails
CONNECT_TIMEOUT = 10
_URL_SETTING = "MECHA_DATABASE_URL"
_USERINFO = re.compile(r"(?P<scheme>postgres(?:ql)?://)(?P<user>[^:@/]*):[^@/]*@")
_KEYWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_HIDDEN = "****"
#: what libpq says when the server refuses a login (connection errors carry no SQLSTATE)
_REFUSED = (
    "authentication failed",
    "no password supplied",
    "is not permitted to log in",
    "no pg_hba.conf entry",
)


def scrub(text: str, password: str = "") -> str:
    """``text`` with the password (given, or written in a URL or ``password=``) hidden."""
    if password:
        text = text.replace(password, _HIDDEN)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{_HIDDEN}@", text)
    return _KEYWORD.sub(lambda m: f"{m[1]}{_HIDDEN}", text)


@dataclass(frozen=True)
class Server:
    """Where the database is, parsed from a URL or conninfo string."""

    host: str
    port: str
    database: str
    user: str
    conninfo: str = field(repr=False)
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str) -> Server:
        """The server ``url`` names; StoreError (without the password) if it is malformed."""
        try:
            values = pg_conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(
                f"{_URL_SETTING} is not a PostgreSQL URL: {scrub(str(exc))}",
                hint="write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
            ) from None
        password = str(values.get("password") or "")
        values.setdefault("connect_timeout", CONNECT_TIMEOUT)
        values.setdefault("application_name", "mecha")  # pg_stat_activity shows who is who
        return cls(
            host=str(values.get("host") or values.get("hostaddr") or "localhost"),
            port=str(values.get("port") or "5432"),
            database=str(values.get("dbname") or values.get("user") or ""),
            user=str(values.get("user") or ""),
            conninfo=pg_conninfo.make_conninfo("", **values),
            password=password,
        )

    def __str__(self) -> str:
        return f"{self.host}:{self.port}/{self.database}"

    @property
    def url(self) -> str:
        """The URL without its password, for people."""
        user = f"{self.user}@" if self.user else ""
        return f"postgresql://{user}{self.host}:{self.port}/{self.database}"

    def connect(self, doing: str) -> psycopg.Connection[tuple[object, ...]]:
        """A new autocommit connection; StoreError that says why if there is none."""
        with self.translated(doing):
            return psycopg.connect(self.conninfo, autocommit=True)

    @contextlib.contextmanager
    def translated(self, doing: str) -> Iterator[None]:
        """Turn any psycopg error inside into the StoreError that explains it."""
        try:
            yield
        except PoolClosed:
            raise closed(self, doing) from None
        except psycopg.Error as exc:
            raise self.store_error(exc, doing) from None

    def store_error(self, exc: psycopg.Error, doing: str) -> StoreError:
        """The StoreError that explains ``exc``, raised while ``doing`` something."""
        detail = scrub(str(exc).strip(), self.password)
        message, hint = self._explained(exc, detail)
        return StoreError(f"{message} (while {doing}: {detail})", hint=hint)

    def _explained(self, exc: psycopg.Error, detail: str) -> tuple[str, str]:
        """(what is wrong, what to do) for ``exc``: the first of ``_kinds`` that fits."""
        where = f"PostgreSQL at {self.host}:{self.port}"
        texts = {
            "missing": (
                f'the database "{self.database}" does not exist on {where}',
                f'create it (createdb {self.database}, or CREATE DATABASE "{self.database}") '
                f"or name another one in {_URL_SETTING}",
            ),
            "refused": (
                f'{where} refused user "{self.user}": authentication failed',
                f"check the user and password in {_URL_SETTING} (the password is never shown)",
            ),
            "privilege": (
                f'user "{self.user}" may not do this in the database {self}',
                f'let it own the database (ALTER DATABASE "{self.database}" OWNER TO '
                f'"{self.user}") or grant it CREATE and USAGE on the schema',
            ),
            "locked": (
                f"the database {self} stayed locked longer than the lock timeout",
                "another mecha process holds it; let it finish, then try again",
            ),
            "conflict": (
                f"another connection changed the same rows of the database {self} at once",
                "nothing of this call was stored; try again (mecha retries what it sends)",
            ),
            "busy": (
                f"no connection to {where} came free in time",
                "every connection of this mecha stayed busy: the server answers slowly or is "
                "overloaded; check its load and its log",
            ),
            "connection": (
                f"cannot connect to {where} (database {self.database})",
                f"check that the server runs and that {_URL_SETTING} names its host and port",
            ),
        }
        unexplained = (
            f"database error on {where}/{self.database}",
            "if it happens again, report it with this message",
        )
        kind = next((kind for kind, fits in self._kinds(exc, detail.lower()) if fits), "")
        return texts.get(kind, unexplained)

    def _kinds(self, exc: psycopg.Error, lowered: str) -> tuple[tuple[str, bool], ...]:
        missing = f'database "{self.database.lower()}" does not exist' in lowered
        unknown_role = f'role "{self.user.lower()}" does not exist' in lowered
        refused = pg_errors.InvalidPassword | pg_errors.InvalidAuthorizationSpecification
        return (
            ("missing", isinstance(exc, pg_errors.InvalidCatalogName) or missing),
            ("refused", isinstance(exc, refused) or unknown_role
             or any(why in lowered for why in _REFUSED)),
            ("privilege", isinstance(exc, pg_errors.InsufficientPrivilege)),
            ("locked", isinstance(exc, pg_errors.LockNotAvailable | pg_errors.QueryCanceled)),
            ("conflict", isinstance(exc, pg_errors.DeadlockDetected
                                    | pg_errors.SerializationFailure)),
            ("busy", isinstance(exc, PoolTimeout)),
            ("connection", isinstance(exc, psycopg.OperationalError)
             and _connection_failed(exc)),
        )  # fmt: skip


def _connection_failed(exc: psycopg.OperationalError) -> bool:
    """Whether ``exc`` is about the connection itself (none, lost, or none free in the pool):
    such errors carry no SQLSTATE, or one of class 08 (connection exception)."""
    return exc.sqlstate is None or exc.sqlstate.startswith("08")
