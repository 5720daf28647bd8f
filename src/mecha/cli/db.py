"""``mecha db``: the database itself. ``mecha db migrate`` brings its schema up to date;
``mecha db copy`` copies a SQLite database into PostgreSQL.

Every command and ``mecha serve`` migrate the database when they open it; ``migrate``
does it by hand (before starting several serves on one PostgreSQL, or to see where it
stands), on whichever database is chosen: SQLite at MECHA_DB_PATH, or PostgreSQL at
MECHA_DATABASE_URL / config.yml's ``database_url:``. ``copy`` reads the SQLite database
(MECHA_DB_PATH, or ``--from``) and writes the PostgreSQL one (``--to``, or the one chosen)
through ``mecha.app.stores.copy_to_postgres``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mecha.cli.context import AppContext, pass_app
from mecha.errors import StoreError, UsageError

if TYPE_CHECKING:
    from mecha.config.database import PostgresTarget
    from mecha.store.copy import CopyReport, Progress


@click.group()
def db() -> None:
    """The database: bring its schema up to date (`mecha db migrate`), copy SQLite into
    PostgreSQL (`mecha db copy`)."""


@db.command()
@pass_app
def migrate(app: AppContext) -> None:
    """Bring the database's schema up to date; print the versions before and after.

    On SQLite (MECHA_DB_PATH) or PostgreSQL (MECHA_DATABASE_URL, config.yml database_url:);
    creates the database's tables if there are none yet.
    """
    from mecha.app.stores import migrate_store
    from mecha.config.settings import ensure_home

    chosen = app.database()
    name = app.database_name()
    if chosen.postgres is None:
        ensure_home(app.settings)
    before, after = migrate_store(app.settings)
    if after == before.version:
        app.echo(f"{name}: schema v{after}, up to date (this mecha's latest is v{before.latest})")
        return
    created = "" if before.present else " (created)"
    app.echo(f"{name}{created}: migrated from schema v{before.version} to v{after}")


@db.command()
@click.option(
    "--from", "source", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The SQLite database to copy (default: MECHA_DB_PATH, ~/.mecha/mecha.db).",
)  # fmt: skip
@click.option(
    "--to", "to", metavar="URL", default=None,
    help="The PostgreSQL database to copy into: postgresql://USER@HOST:PORT/DBNAME "
    "(default: MECHA_DATABASE_URL or config.yml database_url:).",
)  # fmt: skip
@pass_app
def copy(app: AppContext, source: Path | None, to: str | None) -> None:
    """Copy a SQLite database whole into an empty PostgreSQL database.

    Workers, events with their bodies, decisions, tasks, the timeline and the write-back
    ledger keep their ids, times and order. The target is migrated first and must hold
    no Mecha rows; nothing is copied while mecha serve runs on the source. One
    transaction: a failure leaves the target as it was. The rows of each table are
    counted in both at the end; a difference is an error.
    """
    from mecha.app.stores import copy_to_postgres

    target = _copy_target(app, to)
    path = (source or app.settings.db_path).expanduser().absolute()
    shown = app.settings.shown(path)
    app.echo(f"copying {shown} into PostgreSQL {target.shown}", err=True)

    def show(step: Progress) -> None:
        if step.finished:
            app.echo(f"  {step.table}: {_rows(step.done)} copied", err=True)
        elif step.done:
            app.echo(f"  {step.table}: {step.done:,} of {_rows(step.total)}", err=True)

    try:
        report = copy_to_postgres(app.settings, target, source=path, progress=show)
    except StoreError as exc:
        counted: CopyReport | None = getattr(exc, "report", None)  # CopyMismatch's counts
        if counted is not None:
            app.echo(_counts(counted))
        raise
    except KeyboardInterrupt:
        app.echo(
            f"interrupted: the copy was rolled back, PostgreSQL {target.shown} is as it was",
            err=True,
        )
        raise
    app.echo(_counts(report))
    app.echo(
        f"copied {_rows(report.rows)} from {shown} into PostgreSQL {target.shown} in "
        f"{report.seconds:.1f} s; every table holds as many rows in both"
    )
    if to:
        app.echo(
            f"next: set MECHA_DATABASE_URL={target.shown} (or database_url: in config.yml) "
            "and start mecha serve"
        )


def _copy_target(app: AppContext, to: str | None) -> PostgresTarget:
    """``--to``'s database (its password from the URL, or from config.yml's
    ``database_password:`` when it names the same server and user as ``database_url:``),
    else the PostgreSQL the settings choose. No password is ever shown."""
    from mecha.config.database import UrlProblem, parse_url

    if not to:
        chosen = app.database()
        if chosen.postgres is None:
            raise UsageError(
                "name the PostgreSQL database to copy into: "
                "mecha db copy --to postgresql://USER@HOST:PORT/DBNAME",
                hint="or set MECHA_DATABASE_URL (or database_url: in config.yml) to it and "
                "run mecha db copy without --to",
            )
        return chosen.postgres
    try:
        target = parse_url(to, origin="--to")
    except UrlProblem as exc:
        raise UsageError(f"--to {exc.message}", hint=exc.hint) from None
    app.known.add(target.secret_values())
    if target.password:
        return target
    from mecha.config.settings import read_database_keys

    keys = read_database_keys(app.settings, app.environ)
    same = keys.target is not None and (keys.target.user, keys.target.hosts) == (
        target.user,
        target.hosts,
    )
    if not (keys.password_ref and same):
        return target  # libpq's PGPASSWORD or ~/.pgpass may give it
    password = app.secrets().resolve(keys.password_ref)
    return replace(
        target, password=password, password_from=f"secrets.yml (tokens.{keys.password_ref})"
    )


def _rows(count: int) -> str:
    return f"{count:,} {'row' if count == 1 else 'rows'}"


def _counts(report: CopyReport) -> str:
    """The rows of each table in both databases, a difference marked."""
    from mecha.cli.table import render_table

    rows = [
        [c.table, f"{c.source:,}", f"{c.target:,}", "" if c.source == c.target else "DIFFERS"]
        for c in report.counts
    ]
    return render_table(["TABLE", "SQLITE", "POSTGRESQL", ""], rows)
