"""The database as users choose it: `mecha db migrate` and `mecha doctor` on SQLite and on
PostgreSQL (MECHA_DATABASE_URL, config.yml database_url:, a password from secrets.yml),
`mecha serve` storing a webhook in PostgreSQL, and the password in no output at all."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mecha.store.postgres.migrations import LATEST_VERSION as PG_LATEST
from mecha.store.sqlite.migrations import LATEST_VERSION, MIGRATIONS, migrate
from mecha.testing.serve_process import ServeProcess
from tests.e2e.serving import make_home, post_github, pr_payload

PASSWORD = "pw-Zq8dN3xKv1"
WORKER = (
    "name: good\nendpoint: http://127.0.0.1:9\nevents:\n"
    "  - source: github\n    on: [pull_request.opened]\n    prompt: Review {{ subject }}\n"
)


def mecha(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``mecha ARGS`` with MECHA_HOME=``home``, no other MECHA_* variable but ``env``'s."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    environ.update({"MECHA_HOME": str(home), "HOME": str(home.parent)}, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "mecha", *args], env=environ, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def fresh_home(tmp_path: Path, config: str = "", secrets: str = "") -> Path:
    home = tmp_path / "mecha-home"
    home.mkdir(mode=0o700)
    if config:
        (home / "config.yml").write_text(config)
        (home / "config.yml").chmod(0o600)
    if secrets:
        (home / "secrets.yml").write_text(secrets)
        (home / "secrets.yml").chmod(0o600)
    return home


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def with_password(url: str, password: str = PASSWORD) -> str:
    """``postgresql://user@host…`` with a password (the test server trusts any)."""
    scheme, _, rest = url.partition("://")
    user, _, place = rest.partition("@")
    return f"{scheme}://{user}:{password}@{place}"


def shown(url: str) -> str:
    """What Mecha calls the database at ``url`` (no password)."""
    scheme, _, rest = url.partition("://")
    user, _, place = rest.partition("@")
    return f"PostgreSQL {scheme}://{user.partition(':')[0]}@{place}"


# ------------------------------------------------------------------------------- SQLite


def test_db_migrate_creates_a_sqlite_database_then_finds_it_up_to_date(tmp_path: Path) -> None:
    home = fresh_home(tmp_path)
    first = mecha(home, "db", "migrate")
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        f"{home / 'mecha.db'} (created): migrated from schema v0 to v{LATEST_VERSION}\n"
    )
    again = mecha(home, "db", "migrate")
    assert again.stdout == (
        f"{home / 'mecha.db'}: schema v{LATEST_VERSION}, up to date "
        f"(this mecha's latest is v{LATEST_VERSION})\n"
    )


def test_an_older_sqlite_database_is_reported_by_doctor_and_migrated(tmp_path: Path) -> None:
    home = fresh_home(tmp_path)
    conn = sqlite3.connect(home / "mecha.db", isolation_level=None)
    migrate(conn, migrations=MIGRATIONS[:3])
    conn.close()
    (home / "mecha.db").chmod(0o600)
    doctor = mecha(home, "doctor")
    assert (
        f"[!!] database {home / 'mecha.db'} needs migrating (schema v3, this mecha's "
        f"v{LATEST_VERSION}): run `mecha db migrate`"
    ) in doctor.stdout
    done = mecha(home, "db", "migrate")
    assert done.stdout == f"{home / 'mecha.db'}: migrated from schema v3 to v{LATEST_VERSION}\n"
    doctor = mecha(home, "doctor")
    assert (
        f"[ok] database {home / 'mecha.db'} (SQLite, schema v{LATEST_VERSION}, this mecha's "
        f"v{LATEST_VERSION}, mode 600, 0 workers)"
    ) in doctor.stdout


def test_doctor_on_a_fresh_machine_creates_no_database(tmp_path: Path) -> None:
    home = fresh_home(tmp_path)
    doctor = mecha(home, "doctor")
    assert f"[!!] database {home / 'mecha.db'} not created yet" in doctor.stdout
    assert not (home / "mecha.db").exists()


# ------------------------------------------------------- PostgreSQL chosen, no server needed


def test_the_environment_url_wins_over_config_yml(tmp_path: Path) -> None:
    port = closed_port()
    home = fresh_home(tmp_path, config=f"database_url: postgresql://file@127.0.0.1:{port}/filedb\n")
    env = {"MECHA_DATABASE_URL": f"postgresql://env:{PASSWORD}@127.0.0.1:{port}/envdb"}
    doctor = mecha(home, "doctor", env=env)
    assert f"[FAIL] database PostgreSQL postgresql://env@127.0.0.1:{port}/envdb: " in doctor.stdout
    assert "filedb" not in doctor.stdout and PASSWORD not in doctor.stdout + doctor.stderr
    without = mecha(home, "doctor")
    assert f"[FAIL] database PostgreSQL postgresql://file@127.0.0.1:{port}/filedb: " in (
        without.stdout
    )


@pytest.mark.parametrize(
    "args",
    [("doctor",), ("db", "migrate"), ("event", "ls"), ("config",), ("worker", "ls"),
     ("task", "ls"), ("prune", "--dry-run")],
    ids=" ".join,
)  # fmt: skip
def test_the_password_is_in_no_output_when_the_server_does_not_answer(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    port = closed_port()
    home = fresh_home(tmp_path)
    env = {"MECHA_DATABASE_URL": f"postgresql://mecha:{PASSWORD}@127.0.0.1:{port}/mecha"}
    done = mecha(home, *args, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert f"127.0.0.1:{port}" in done.stdout + done.stderr  # it says which server
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_a_password_from_secrets_yml_is_in_no_output(tmp_path: Path) -> None:
    port = closed_port()
    home = fresh_home(
        tmp_path,
        config=f"database_url: postgresql://mecha@127.0.0.1:{port}/mecha\n"
        "database_password: postgres.main\n",
        secrets=f"tokens:\n  postgres:\n    main: {PASSWORD}\n",
    )
    for args in (("doctor",), ("db", "migrate"), ("event", "ls")):
        done = mecha(home, *args)
        assert done.returncode == 1 and PASSWORD not in done.stdout + done.stderr


def test_a_malformed_url_is_a_located_config_error(tmp_path: Path) -> None:
    home = fresh_home(tmp_path, config=f"addr: :1\ndatabase_url: postgres://m:{PASSWORD}@db\n")
    done = mecha(home, "event", "ls")
    assert done.returncode == 1
    assert f"{home / 'config.yml'}:2:15: database_url names no database" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    (home / "config.yml").write_text("addr: :1\n")
    env = {"MECHA_DATABASE_URL": f"mysql://m:{PASSWORD}@db/x"}
    done = mecha(home, "worker", "ls", env=env)
    assert done.stderr.startswith('error: MECHA_DATABASE_URL has the scheme "mysql"')
    assert PASSWORD not in done.stdout + done.stderr


def test_a_literal_password_in_a_readable_config_yml_is_refused(tmp_path: Path) -> None:
    home = fresh_home(tmp_path, config=f"database_url: postgresql://m:{PASSWORD}@db/m\n")
    (home / "config.yml").chmod(0o644)
    done = mecha(home, "event", "ls")
    assert done.returncode == 1 and "chmod 600" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_without_psycopg_the_error_names_the_extra_to_install(tmp_path: Path) -> None:
    home = fresh_home(tmp_path)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    environ.update(MECHA_HOME=str(home), MECHA_DATABASE_URL=f"postgresql://m:{PASSWORD}@db/m")
    no_psycopg = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg_pool'] = None; "
        "from mecha.cli import main; main(['db', 'migrate'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", no_psycopg], env=environ, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(
        "error: MECHA_DATABASE_URL chooses PostgreSQL (postgresql://m@db:5432/m), but psycopg, "
        "its driver, is not installed"
    )
    assert "pip install 'mecha-engine[postgres]'" in done.stderr and PASSWORD not in done.stderr


# ---------------------------------------------------------------------- a real PostgreSQL


def test_db_migrate_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    home = fresh_home(tmp_path)
    env = {"MECHA_DATABASE_URL": with_password(pg_url)}
    first = mecha(home, "db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"{shown(pg_url)}: migrated from schema v0 to v{PG_LATEST}\n"
    again = mecha(home, "db", "migrate", env=env)
    assert again.stdout == (
        f"{shown(pg_url)}: schema v{PG_LATEST}, up to date (this mecha's latest is v{PG_LATEST})\n"
    )
    assert PASSWORD not in first.stdout + first.stderr + again.stdout + again.stderr
    assert not (home / "mecha.db").exists()


def test_reads_of_an_empty_postgresql_database_create_no_tables(
    tmp_path: Path, pg_url: str
) -> None:
    home = fresh_home(tmp_path)
    env = {"MECHA_DATABASE_URL": pg_url}
    for args in (("event", "ls"), ("worker", "ls"), ("task", "ls")):
        done = mecha(home, *args, env=env)
        assert done.returncode == 0, done.stderr
    doctor = mecha(home, "doctor", env=env)
    assert (
        f"[!!] database {shown(pg_url)} holds no Mecha tables yet (schema v0, this mecha's "
        f"v{PG_LATEST}): `mecha db migrate` creates them"
    ) in doctor.stdout
    pruned = mecha(home, "prune", "--dry-run", env=env)
    assert pruned.stdout == f"nothing to prune: {shown(pg_url)} holds no Mecha tables yet\n"


def test_workers_and_doctor_on_postgresql_with_the_password_from_secrets_yml(
    tmp_path: Path, pg_url: str
) -> None:
    home = fresh_home(
        tmp_path,
        config=f"database_url: {pg_url}\ndatabase_password: postgres.main\n",
        secrets=f"tokens:\n  postgres:\n    main: {PASSWORD}\n",
    )
    (tmp_path / "good.yml").write_text(WORKER)
    added = mecha(home, "worker", "add", str(tmp_path / "good.yml"))
    assert added.returncode == 0, added.stderr
    listed = mecha(home, "worker", "ls")
    assert "good" in listed.stdout
    doctor = mecha(home, "doctor")
    assert (
        f"[ok] database {shown(pg_url)} answers (schema v{PG_LATEST}, this mecha's "
        f"v{PG_LATEST}; 1 worker)"
    ) in doctor.stdout
    config = mecha(home, "config")
    assert config.returncode == 0 and "name: good" in config.stdout
    for done in (added, listed, doctor, config):
        assert PASSWORD not in done.stdout + done.stderr
    assert not (home / "mecha.db").exists()


def test_serve_stores_a_webhook_in_postgresql_and_event_ls_reads_it(
    tmp_path: Path, pg_url: str
) -> None:
    home = make_home(tmp_path, config=f"database_url: {with_password(pg_url)}\n")
    (home / "config.yml").chmod(0o600)  # it holds a literal password
    with ServeProcess(home) as server:
        answer = post_github(server.url, pr_payload(number=41))
        assert answer.status_code == 202, answer.text
        event_id = answer.json()["id"]
        listed = mecha(home, "event", "ls")
        log = server.log()
    assert listed.returncode == 0, listed.stderr
    assert f"{event_id[:12]}  github  pull_request.opened  octo/app" in listed.stdout
    assert PASSWORD not in listed.stdout + listed.stderr + log
    assert f"INFO mecha.serve: storing in {shown(pg_url)}" in log
    assert not (home / "mecha.db").exists()
    shown_event = mecha(home, "event", "show", event_id)
    assert shown_event.returncode == 0 and "octo/app" in shown_event.stdout


def test_a_newer_postgresql_schema_is_a_doctor_failure_and_not_migrated(
    tmp_path: Path, pg_url: str
) -> None:
    import psycopg

    home = fresh_home(tmp_path)
    env = {"MECHA_DATABASE_URL": pg_url}
    assert mecha(home, "db", "migrate", env=env).returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)"
        )
    doctor = mecha(home, "doctor", env=env)
    assert (
        f"[FAIL] database {shown(pg_url)} is newer than this mecha (schema v99, this mecha's "
        f"v{PG_LATEST}): upgrade mecha"
    ) in doctor.stdout
    assert doctor.returncode == 1
    refused = mecha(home, "db", "migrate", env=env)
    assert refused.returncode == 1 and "schema version 99" in refused.stderr
    assert "upgrade mecha" in refused.stderr
