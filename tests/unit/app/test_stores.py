"""app/stores: the chosen database opened, read without migrating, migrated by hand; and
the CLI's context knowing a PostgreSQL password from the moment it is chosen."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from mecha.app.stores import (
    describe,
    empty_store,
    exists,
    migrate_store,
    open_existing_store,
    open_prune_store,
    schema_state,
)
from mecha.cli.context import AppContext
from mecha.config.database import Database, parse_url
from mecha.config.settings import Settings, with_database
from mecha.errors import StoreError
from mecha.redaction import REDACTED
from mecha.store.postgres.migrations import LATEST_VERSION as PG_LATEST
from mecha.store.sqlite.migrations import LATEST_VERSION, MIGRATIONS, migrate

PASSWORD = "pw-unit-7Hc2Qx"


def sqlite_settings(tmp_path: Path) -> Settings:
    return with_database(Settings.from_env({"MECHA_HOME": str(tmp_path / ".mecha")}), {})


def pg_settings(tmp_path: Path, url: str) -> Settings:
    settings = Settings.from_env(
        {"MECHA_HOME": str(tmp_path / ".mecha"), "MECHA_DATABASE_URL": url}
    )
    return with_database(settings, {})


# ------------------------------------------------------------------------------- SQLite


def test_sqlite_is_read_without_being_made_then_made_by_migrating(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path)
    assert describe(settings) == str(settings.db_path)
    assert schema_state(settings) == replace(
        schema_state(settings), version=0, latest=LATEST_VERSION, present=False
    )
    assert not exists(settings) and open_existing_store(settings) is None
    assert not settings.db_path.exists()
    before, after = migrate_store(settings)
    assert (before.version, before.present, after) == (0, False, LATEST_VERSION)
    assert exists(settings) and schema_state(settings).version == LATEST_VERSION
    store = open_existing_store(settings)
    assert store is not None and store.schema_version() == LATEST_VERSION
    store.close()


def test_an_older_sqlite_file_is_read_as_it_is(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path)
    settings.db_path.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(settings.db_path, isolation_level=None)
    migrate(conn, migrations=MIGRATIONS[:2])
    conn.close()
    assert schema_state(settings).version == 2  # read only: nothing migrated
    before, after = migrate_store(settings)
    assert (before.version, after) == (2, LATEST_VERSION)


def test_a_file_that_is_no_database_is_a_store_error(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path)
    settings.db_path.parent.mkdir(mode=0o700)
    settings.db_path.write_bytes(b"not a database at all, just some text " * 40)
    with pytest.raises(StoreError, match="is not a SQLite database"):
        schema_state(settings)


def test_the_empty_store_reads_nothing_whichever_database_is_chosen(tmp_path: Path) -> None:
    settings = pg_settings(tmp_path, "postgresql://m@127.0.0.1:1/m")
    store = empty_store(settings)
    assert store.list_workers() == [] and store.schema_version() == LATEST_VERSION
    store.close()


def test_unchosen_settings_choose_from_the_environment_when_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MECHA_DATABASE_URL", raising=False)
    settings = Settings.from_env({"MECHA_HOME": str(tmp_path / ".mecha")})
    assert settings.database is None
    store = open_prune_store(settings)
    store.close()
    assert settings.db_path.exists()


# ---------------------------------------------------------------------------- PostgreSQL


def test_postgresql_is_read_without_tables_being_made_then_migrated(
    tmp_path: Path, pg_url: str
) -> None:
    settings = pg_settings(tmp_path, pg_url)
    assert describe(settings).startswith("PostgreSQL postgresql://postgres@127.0.0.1:")
    assert schema_state(settings) == replace(
        schema_state(settings), version=0, latest=PG_LATEST, present=True
    )
    assert not exists(settings) and open_existing_store(settings) is None
    assert schema_state(settings).version == 0  # still nothing made
    before, after = migrate_store(settings)
    assert (before.version, after) == (0, PG_LATEST)
    store = open_existing_store(settings)
    assert store is not None and store.list_workers() == []
    store.close()
    prune = open_prune_store(settings)
    assert prune.count_prunable({}).total == 0
    prune.close()
    assert not settings.db_path.exists()


def test_a_server_that_does_not_answer_is_a_store_error_without_the_password(
    tmp_path: Path,
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = pg_settings(tmp_path, f"postgresql://m:{PASSWORD}@127.0.0.1:{port}/m")
    with pytest.raises(StoreError) as caught:
        schema_state(settings)
    assert f"127.0.0.1:{port}" in str(caught.value) and PASSWORD not in str(caught.value)


# ------------------------------------------------------------ the password known at once


def test_the_environment_password_is_masked_from_the_start(tmp_path: Path) -> None:
    app = AppContext(
        {"MECHA_HOME": str(tmp_path), "MECHA_DATABASE_URL": f"postgresql://m:{PASSWORD}@db/m"}
    )
    assert (
        app.redact(f"could not connect with {PASSWORD}!") == f"could not connect with {REDACTED}!"
    )


def test_a_password_from_secrets_yml_is_masked_once_the_database_is_chosen(
    tmp_path: Path,
) -> None:
    home = tmp_path / ".mecha"
    home.mkdir(mode=0o700)
    (home / "config.yml").write_text(
        "database_url: postgresql://m@db/m\ndatabase_password: postgres.main\n"
    )
    (home / "secrets.yml").write_text(f"tokens: {{postgres: {{main: '{PASSWORD}'}}}}\n")
    (home / "secrets.yml").chmod(0o600)
    app = AppContext({"MECHA_HOME": str(home), "HOME": str(tmp_path)})
    chosen = app.database()
    assert isinstance(chosen, Database) and chosen.postgres is not None
    assert chosen.postgres.password == PASSWORD
    assert app.redact(PASSWORD) == REDACTED
    assert app.database_name() == "PostgreSQL postgresql://m@db:5432/m"
    assert app.no_database_yet() == "PostgreSQL postgresql://m@db:5432/m holds no Mecha tables yet"


def test_a_percent_encoded_password_is_masked_in_both_forms(tmp_path: Path) -> None:
    url = "postgresql://m:p%40ss-w0rd-long@db/m"
    app = AppContext({"MECHA_HOME": str(tmp_path), "MECHA_DATABASE_URL": url})
    assert parse_url(url, origin="").password == "p@ss-w0rd-long"
    assert app.redact(f"{url} p@ss-w0rd-long") == f"postgresql://m:{REDACTED}@db/m {REDACTED}"
