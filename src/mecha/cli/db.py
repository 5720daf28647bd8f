"""``mecha db``: the database itself. ``mecha db migrate`` brings its schema up to date.

Every command and ``mecha serve`` migrate the database when they open it; ``migrate``
does it by hand (before starting several serves on one PostgreSQL, or to see where it
stands), on whichever database is chosen: SQLite at MECHA_DB_PATH, or PostgreSQL at
MECHA_DATABASE_URL / config.yml's ``database_url:``.
"""

from __future__ import annotations

import click

from mecha.cli.context import AppContext, pass_app


@click.group()
def db() -> None:
    """The database: bring its schema up to date (`mecha db migrate`)."""


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
