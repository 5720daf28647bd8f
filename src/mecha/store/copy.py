"""``mecha db copy``: a SQLite database copied whole into PostgreSQL, in one transaction.

``copy_sqlite_to_postgres`` copies every table that holds data (workers, events with their
raw bodies, match decisions, tasks with their results and progress, the timeline, the
write ledger) and the registry's version, so a user moving from one node on SQLite to
several on PostgreSQL keeps everything:

* the source must be a Mecha database at this Mecha's schema, with no ``mecha serve``
  running on it (its serve mark, ``store.serve_mark``); it is read under SQLite's write
  lock (``BEGIN IMMEDIATE``), so nothing changes it during the copy, and is never written;
* the target is migrated to the current schema first and must hold no row in any of these
  tables (they are locked against other writers for the whole copy);
* rows keep their ids, times, states, JSON and order: events and tasks take SQLite's
  rowid as their ``seq`` (the tie-breaker of "newest first"), timeline ids and ledger
  ``seq`` are kept, and every sequence is moved past the copied rows, so rows stored
  later sort after them. Raw bodies are unpacked and packed again as PostgreSQL keeps
  them (``common.pack_raw``), which also checks each one;
* everything goes in with ``COPY`` in one transaction: any failure, or an interruption,
  leaves the target as it was. Before the commit the rows of each table are counted in
  both databases; a difference is ``CopyMismatch`` and nothing is committed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from mecha.errors import MigrationError, StoreError
from mecha.store.common import pack_raw, unpack_raw
from mecha.store.postgres.adapters import configure
from mecha.store.postgres.parts import Conn
from mecha.store.postgres.server import Server
from mecha.store.postgres.store import LOCK_TIMEOUT, open_postgres
from mecha.store.serve_mark import running_serve
from mecha.store.sqlite.file import result_code, translated
from mecha.store.sqlite.migrations import LATEST_VERSION, current_version

#: report progress at least every this many rows of a table…
PROGRESS_ROWS = 10_000
#: …or this many seconds, whichever comes first
PROGRESS_SECONDS = 2.0
#: rows read from SQLite at a time (events: fewer, their raw bodies are large)
FETCH = 1_000
FETCH_EVENTS = 100
#: SQLite's busy timeout while it waits for another writer to finish (seconds)
BUSY_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Table:
    """One table copied, and how SQLite orders it (rows take serial numbers in it)."""

    name: str
    #: SQLite's order, which the copy keeps
    order: str = "rowid"
    #: a PostgreSQL-only column that takes SQLite's rowid ("" if none)
    rowid_as: str = ""


#: every table that holds data, parents first (event_matches refers to events); a table a
#: later migration adds is copied after these, in rowid order, when both schemas have it
TABLES: tuple[Table, ...] = (
    Table("workers"),
    Table("events", rowid_as="seq"),
    Table("event_matches"),
    Table("tasks", rowid_as="seq"),
    Table("timeline", "id"),
    Table("writes", "seq"),
)
#: tables that are not copied as rows: each database's own migrations, SQLite's own
#: bookkeeping, and the registry (one row, its version carried over)
NOT_COPIED = frozenset({"schema_migrations", "sqlite_sequence", "registry"})


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the copy of one table is."""

    table: str
    done: int
    total: int
    #: the table is copied (``done == total``)
    finished: bool = False


@dataclass(frozen=True, slots=True)
class TableCount:
    """The rows of one table in the source and, after the copy, in the target."""

    table: str
    source: int
    target: int


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What was copied, and the counts compared."""

    source: Path
    #: the target as shown (no password)
    target: str
    schema: int
    counts: tuple[TableCount, ...]
    seconds: float

    @property
    def matches(self) -> bool:
        """Whether every table holds as many rows in the target as in the source."""
        return all(count.source == count.target for count in self.counts)

    @property
    def rows(self) -> int:
        """Rows copied in all."""
        return sum(count.target for count in self.counts)


class TargetNotEmpty(StoreError):
    """The target holds Mecha rows already; nothing was copied."""


class CopyMismatch(StoreError):
    """The counts differ after the copy; nothing was committed."""

    def __init__(self, report: CopyReport) -> None:
        differ = ", ".join(
            f"{c.table} {c.source:,} in SQLite but {c.target:,} in PostgreSQL"
            for c in report.counts
            if c.source != c.target
        )
        super().__init__(
            f"the copy to {report.target} was rolled back: the row counts differ ({differ})",
            hint="nothing was committed, the target is as it was; check the target for "
            "triggers or rules of its own, and report it with this message if it has none",
        )
        self.report = report


def copy_sqlite_to_postgres(
    source: Path, url: str, *, progress: Callable[[Progress], None] | None = None
) -> CopyReport:
    """Copy the SQLite database at ``source`` into the PostgreSQL database ``url`` names.

    StoreError (nothing copied, the target left as it was) if a serve runs on the source,
    the source is missing, not a Mecha database or not at this Mecha's schema, the target
    holds rows already or cannot be reached, or any statement fails; CopyMismatch if the
    counts differ before the commit (rolled back too). ``progress`` is called as each
    table starts, at least every ``PROGRESS_ROWS`` rows or ``PROGRESS_SECONDS``, and as it
    ends.
    """
    started = time.monotonic()
    report = progress or (lambda _: None)
    _refuse_serving(source)
    with _source(source) as src:
        shape = _source_tables(src, source)
        server = Server.parse(url)
        open_postgres(url, max_connections=1).close()  # reachable, and migrated first
        with contextlib.closing(server.connect("connecting to copy")) as conn:
            configure(conn, lock_timeout=LOCK_TIMEOUT)
            try:
                with server.translated("copying"), conn.transaction():
                    counts = _copy_all(src, conn, shape, report, where=server.url)
                    done = CopyReport(
                        source=source, target=server.url, schema=LATEST_VERSION,
                        counts=counts, seconds=time.monotonic() - started,
                    )  # fmt: skip
                    if not done.matches:
                        raise CopyMismatch(done)
            except (CopyMismatch, TargetNotEmpty):
                raise
            except StoreError as exc:
                raise StoreError(
                    f"the copy to {server.url} failed and was rolled back, nothing of it "
                    f"is in the target: {exc.message}",
                    hint=exc.hint,
                ) from None
    return CopyReport(
        source=done.source, target=done.target, schema=done.schema, counts=done.counts,
        seconds=time.monotonic() - started,
    )  # fmt: skip


def _refuse_serving(source: Path) -> None:
    pid = running_serve(source)
    if pid is not None:
        which = f"mecha serve (pid {pid})" if pid else "a mecha serve"
        raise StoreError(
            f"{which} runs on {source}: it would go on storing there during the copy",
            hint="stop it first (Ctrl-C, or kill its pid), then run mecha db copy again; "
            "start it again with MECHA_DATABASE_URL set once the copy is done",
        )


@contextlib.contextmanager
def _source(path: Path) -> Iterator[sqlite3.Connection]:
    """The source at this Mecha's schema, inside a transaction that holds SQLite's write
    lock (a read-only file: a read snapshot), rolled back at the end: never written."""
    if not path.is_file():
        raise StoreError(
            f"there is no SQLite database at {path}",
            hint="name it with --from PATH (or MECHA_DB_PATH); it is ~/.mecha/mecha.db "
            "unless MECHA_HOME or MECHA_DB_PATH says otherwise",
        )
    with translated(path, "opening it to copy"):
        conn = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=rw", uri=True, isolation_level=None
        )
    try:
        with translated(path, "reading it to copy"):
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            _check_version(conn, path)
            try:
                conn.execute("BEGIN IMMEDIATE")  # no other mecha writes during the copy
            except sqlite3.OperationalError as exc:
                if result_code(exc) != sqlite3.SQLITE_READONLY:
                    raise
                conn.execute("BEGIN")  # a read-only file: nothing can write it anyway
        yield conn
    finally:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        conn.close()


def _check_version(conn: sqlite3.Connection, path: Path) -> None:
    version = max(current_version(conn), int(conn.execute("PRAGMA user_version").fetchone()[0]))
    if version == LATEST_VERSION:
        return
    if version == 0:
        raise MigrationError(
            f"{path} is not a Mecha database (it has no schema_migrations table)",
            hint="name Mecha's database with --from PATH (~/.mecha/mecha.db by default)",
        )
    if version > LATEST_VERSION:
        raise MigrationError(
            f"{path} is at schema v{version}, newer than this mecha knows (v{LATEST_VERSION})",
            hint="upgrade mecha (a newer release wrote this database), then copy it",
        )
    raise MigrationError(
        f"{path} is at schema v{version}; this mecha copies databases at v{LATEST_VERSION}",
        hint=f"bring it up to date first: MECHA_DB_PATH={path} mecha db migrate (then copy)",
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """The source's tables to copy (in order) with their columns, the registry's version,
    and the highest id each AUTOINCREMENT table ever gave (removed rows included)."""

    tables: tuple[Table, ...]
    columns: dict[str, tuple[str, ...]]
    registry: int
    autoincrement: dict[str, int]


def _source_tables(conn: sqlite3.Connection, path: Path) -> _Shape:
    """The tables to copy: ``TABLES``, then any other the source holds (rowid order, or
    its primary key's for a table without rowid), but ``NOT_COPIED``."""
    with translated(path, "reading its tables"):
        found = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        made = {str(name): str(text or "") for name, text in found}
        known = {table.name for table in TABLES}
        tables = [table for table in TABLES if table.name in made]
        for name in sorted(set(made) - known - NOT_COPIED):
            rowid = "WITHOUT ROWID" not in made[name].upper()
            tables.append(Table(name, "rowid" if rowid else _primary_key(conn, name)))
        columns = {
            table.name: tuple(row[1] for row in conn.execute(f'PRAGMA table_info("{table.name}")'))
            for table in tables
        }
        row = conn.execute("SELECT version FROM registry WHERE id = 1").fetchone()
        highs = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    return _Shape(tuple(tables), columns, int(row[0]) if row else 0, highs)


def _primary_key(conn: sqlite3.Connection, name: str) -> str:
    keys = sorted((row[5], row[1]) for row in conn.execute(f'PRAGMA table_info("{name}")'))
    return ", ".join(f'"{column}"' for position, column in keys if position > 0)


def _copy_all(
    src: sqlite3.Connection,
    dst: Conn,
    shape: _Shape,
    report: Callable[[Progress], None],
    *,
    where: str,
) -> tuple[TableCount, ...]:
    """Lock the target's tables, refuse rows already there, copy, count: one transaction."""
    _check_target_tables(dst, shape)
    names = sql.SQL(", ").join(sql.Identifier(table.name) for table in shape.tables)
    dst.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(names))
    _refuse_rows(dst, shape, where)
    totals = {t.name: _count_source(src, t.name) for t in shape.tables}
    for table in shape.tables:
        _copy_table(
            src, dst, table, columns=shape.columns[table.name], total=totals[table.name],
            report=report,
        )  # fmt: skip
    _move_sequences(dst, shape)
    dst.execute(
        "UPDATE registry SET version = greatest(version, %s) WHERE id = 1", (shape.registry,)
    )
    return tuple(
        TableCount(t.name, _count_source(src, t.name), _count_target(dst, t.name))
        for t in shape.tables
    )


def _check_target_tables(dst: Conn, shape: _Shape) -> None:
    """Every table to copy is in the target too; StoreError naming those that are not."""
    missing = [t.name for t in shape.tables if not _target_columns(dst, t.name)]
    if missing:
        raise StoreError(
            f"PostgreSQL's schema has no table {', '.join(missing)}, which SQLite's has",
            hint="both are at this mecha's schema version, so this is a bug: report it with "
            "this message",
        )


def _refuse_rows(dst: Conn, shape: _Shape, where: str) -> None:
    held = [(t.name, n) for t in shape.tables if (n := _count_target(dst, t.name))]
    if held:
        info = dst.info
        what = ", ".join(f"{n:,} {'row' if n == 1 else 'rows'} in {name}" for name, n in held)
        raise TargetNotEmpty(
            f"PostgreSQL {where} holds Mecha data already ({what}); mecha db copy copies "
            "into an empty database only, so nothing was copied and it is left as it was",
            hint=f"name a new, empty database with --to (createdb {info.dbname}_new), or, if "
            f"what it holds may go, drop it and create it again (dropdb {info.dbname} && "
            f"createdb {info.dbname})",
        )


def _count_source(src: sqlite3.Connection, name: str) -> int:
    return int(src.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # noqa: S608


def _count_target(dst: Conn, name: str) -> int:
    row = dst.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()
    return int(row[0]) if row else 0


def _copy_table(
    src: sqlite3.Connection,
    dst: Conn,
    table: Table,
    *,
    columns: Sequence[str],
    total: int,
    report: Callable[[Progress], None],
) -> None:
    """``COPY`` the source's rows of ``table`` in its order, reporting progress."""
    targets = _target_columns(dst, table.name)
    wanted = set(columns) | ({table.rowid_as} if table.rowid_as else set())
    if set(targets) != wanted:
        raise StoreError(
            f"the {table.name} table has other columns in SQLite ({', '.join(sorted(wanted))}) "
            f"than in PostgreSQL ({', '.join(sorted(targets))})",
            hint="both are at the same schema version, so this is a bug: report it with this "
            "message",
        )
    picked = (f"rowid AS {table.rowid_as}",) if table.rowid_as else ()
    names = (*((table.rowid_as,) if table.rowid_as else ()), *columns)
    quoted = ", ".join((*picked, *(f'"{column}"' for column in columns)))
    select = f'SELECT {quoted} FROM "{table.name}" ORDER BY {table.order}'  # noqa: S608
    fix = _raw_packer(names) if table.name == "events" else None
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(n) for n in names)
    )
    report(Progress(table.name, 0, total))
    done, shown_at, shown_rows = 0, time.monotonic(), 0
    cursor = src.execute(select)  # names from PRAGMA table_info and our constants
    with dst.cursor().copy(copy) as pipe:
        while rows := cursor.fetchmany(FETCH_EVENTS if fix else FETCH):
            for row in rows:
                pipe.write_row(fix(row) if fix else row)
            done += len(rows)
            now = time.monotonic()
            due = done - shown_rows >= PROGRESS_ROWS or now - shown_at >= PROGRESS_SECONDS
            if due and done < total:  # the last is told as finished, just below
                report(Progress(table.name, done, total))
                shown_at, shown_rows = now, done
    report(Progress(table.name, done, total, finished=True))


def _target_columns(dst: Conn, name: str) -> tuple[str, ...]:
    rows = dst.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (name,),
    ).fetchall()
    return tuple(str(row[0]) for row in rows)


def _raw_packer(names: Sequence[str]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A row of events with its raw body unpacked and packed again as PostgreSQL keeps it."""
    raw_at, encoding_at = names.index("raw"), names.index("raw_encoding")

    def packed(row: Sequence[Any]) -> Sequence[Any]:
        values = list(row)
        values[raw_at], values[encoding_at] = pack_raw(
            unpack_raw(values[raw_at], values[encoding_at])
        )
        return values

    return packed


def _move_sequences(dst: Conn, shape: _Shape) -> None:
    """Each serial column's sequence past the highest value copied (and past any id SQLite
    gave before, for an AUTOINCREMENT table), so rows stored later sort after them."""
    for table in shape.tables:
        serials = dst.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = %s AND column_default LIKE 'nextval(%%'",
            (table.name,),
        ).fetchall()
        for (column,) in serials:
            row = dst.execute(
                sql.SQL("SELECT coalesce(max({}), 0) FROM {}").format(
                    sql.Identifier(column), sql.Identifier(table.name)
                )
            ).fetchone()
            high = max(int(row[0]) if row else 0, int(shape.autoincrement.get(table.name, 0)))
            if high > 0:
                dst.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, %s), %s)",
                    (table.name, column, high),
                )
