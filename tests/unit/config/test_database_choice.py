"""Choosing the database: MECHA_DATABASE_URL over config.yml's database_url:, else SQLite;
the URL read strictly, every mistake located, and the password never in a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from mecha.config.database import Database, PostgresTarget, UrlProblem, parse_url
from mecha.config.server_file import ConfigFileError, parse_config
from mecha.config.settings import Settings, choose_database, with_database
from mecha.errors import ConfigError, SecretsError

PASSWORD = "Tr0ub4dor&3-horse"


def parse(text: str, **environ: str) -> object:
    return parse_config(text, file="config.yml", environ=environ)


# ------------------------------------------------------------------------- the URL itself


def test_a_full_url_is_read_and_shown_without_its_password() -> None:
    target = parse_url(
        f"postgresql://mecha:{PASSWORD.replace('&', '%26')}@db.internal:6432/mecha?sslmode=require",
        origin="MECHA_DATABASE_URL",
    )
    assert (target.user, target.password, target.hosts, target.dbname) == (
        "mecha", PASSWORD, "db.internal:6432", "mecha",
    )  # fmt: skip
    assert target.options == (("sslmode", "require"),)
    assert target.shown == "postgresql://mecha@db.internal:6432/mecha"
    assert target.where == "db.internal:6432/mecha"
    assert PASSWORD not in repr(target) and "%26" not in repr(target)
    assert target.password_from == "the URL (MECHA_DATABASE_URL)"
    # the driver's URL holds it, percent-encoded; every form is a secret to mask
    assert target.url() == (
        "postgresql://mecha:Tr0ub4dor%263-horse@db.internal:6432/mecha?sslmode=require"
    )
    assert {PASSWORD, "Tr0ub4dor%263-horse"} <= target.secret_values()


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("postgres://mecha@db/mecha", "db:5432/mecha"),
        ("postgresql://db/mecha", "db:5432/mecha"),
        ("postgresql:///mecha", "local socket/mecha"),
        ("postgresql://mecha@[::1]:5433/mecha", "[::1]:5433/mecha"),
        ("postgresql://mecha@[::1]/mecha", "[::1]:5432/mecha"),
        ("postgresql://mecha@one:5432,two/mecha", "one:5432,two:5432/mecha"),
    ],
)
def test_the_forms_libpq_takes_are_taken(url: str, where: str) -> None:
    target = parse_url(url, origin="x")
    assert target.where == where and target.password == ""
    assert target.secret_values() == frozenset()


def test_a_password_given_as_a_query_option_is_the_password_and_not_an_option() -> None:
    target = parse_url(f"postgresql://mecha@db/mecha?password={PASSWORD.replace('&', '%26')}",
                       origin="x")  # fmt: skip
    assert target.password == PASSWORD and target.options == ()
    assert "password" not in target.shown


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("db.internal:5432/mecha", "is not a URL (it has no scheme://)"),
        (f"mysql://mecha:{PASSWORD}@db/mecha", 'has the scheme "mysql"'),
        (f"sqlite:///{PASSWORD}", 'has the scheme "sqlite"'),
        (f"postgresql://mecha:{PASSWORD}@db:99999/mecha", 'has the port "99999"'),
        (f"postgresql://mecha:{PASSWORD}@db:http/mecha", 'has the port "http"'),
        (f"postgresql://mecha:{PASSWORD}@db", "names no database"),
        (f"postgresql://mecha:{PASSWORD}@db/", "names no database"),
        (f"postgresql://mecha:{PASSWORD}@:5432/mecha", "empty host name"),
        (f"postgresql://mecha:{PASSWORD}@[::1/mecha", "malformed [IPv6] host"),
        (f"postgresql://mecha:{PASSWORD}#@db/mecha", 'holds a "#"'),
        (f"postgresql://mecha:{PASSWORD}@db/mecha?password=x", "gives the password twice"),
    ],
)
def test_a_malformed_url_says_what_is_wrong_without_quoting_it(url: str, words: str) -> None:
    with pytest.raises(UrlProblem) as caught:
        parse_url(url, origin="x")
    assert words in caught.value.message
    assert PASSWORD not in caught.value.message + caught.value.hint
    assert "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME" in caught.value.hint


def test_an_unknown_scheme_says_how_to_keep_sqlite() -> None:
    with pytest.raises(UrlProblem) as caught:
        parse_url("mysql://db/mecha", origin="x")
    assert "MECHA_DB_PATH" in caught.value.hint and "leave it unset" in caught.value.hint


# --------------------------------------------------------------------------- config.yml


def test_config_yml_expands_the_password_from_the_environment() -> None:
    config = parse_config(
        "database_url: postgresql://mecha:${PGPASS}@db:5432/mecha\n",
        file="config.yml", environ={"PGPASS": PASSWORD},
    )  # fmt: skip
    keys = config.database
    assert keys.target is not None and keys.target.password == PASSWORD
    assert keys.url_at == "config.yml:1:15" and keys.target.origin == "config.yml:1:15"
    assert not keys.literal  # the file's text holds no password
    assert PASSWORD not in repr(config)


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("postgresql://mecha:hunter22@db/mecha", True),
        ("postgresql://mecha:${PGPASS:-hunter22}@db/mecha", True),  # the fallback is in the file
        ("postgresql://mecha:${PGPASS}@db/${DB}", False),
        ("${DATABASE_URL}", False),
        ("postgresql://mecha@db/mecha", False),
    ],
)
def test_a_password_written_in_the_file_itself_is_literal(text: str, literal: bool) -> None:
    environ = {"PGPASS": "from-env-1", "DB": "mecha", "DATABASE_URL": "postgresql://a:b@c/d"}
    config = parse_config(f"database_url: {text}\n", file="config.yml", environ=environ)
    assert config.database.literal is literal


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("database_url: postgresql://mecha@db/mecha?x\n", "config.yml:1:15", "malformed ?query"),
        ("addr: :1\ndatabase_url: mysql://db/x\n", "config.yml:2:15",
         'database_url has the scheme "mysql"'),
        ("database_url: ${NOPE}\n", "config.yml:1:15",
         "database_url uses ${NOPE}, which is not set"),
        ("database_url: postgresql://mecha@${HOST}\n", "config.yml:1:15",
         "database_url (after expanding ${...}) names no database"),
        ("database_url: [a]\n", "config.yml:1:15", "database_url must be text"),
        ("database_password: 12\n", "config.yml:1:20", "must be a reference backend.name"),
        ("database_password: postgres\n", "config.yml:1:20", "is not of the form backend.name"),
        ("database_url: postgresql://m:pw12@db/m\ndatabase_password: postgres.main\n",
         "config.yml:2:20", "database_password is set, but database_url holds a password too"),
        ("databse_url: postgresql://db/m\n", "config.yml:1:1", 'unknown key "databse_url"'),
    ],
)  # fmt: skip
def test_config_mistakes_are_located(text: str, where: str, words: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse_config(text, file="config.yml", environ={"HOST": "db"})
    problem = caught.value.problems[0]
    assert str(problem.location) == where and words in problem.message, str(caught.value)


def test_a_reference_to_secrets_yml_is_kept_for_later() -> None:
    config = parse_config(
        "database_url: postgresql://mecha@db/mecha\ndatabase_password: postgres.main\n",
        file="config.yml", environ={},
    )  # fmt: skip
    assert config.database.password_ref == "postgres.main"
    assert config.database.password_at == "config.yml:2:20"


# --------------------------------------------------------------------- the choice made


def home(tmp_path: Path, config: str = "", secrets: str = "", mode: int = 0o600) -> Settings:
    folder = tmp_path / ".mecha"
    folder.mkdir(mode=0o700, exist_ok=True)
    if config:
        (folder / "config.yml").write_text(config)
        (folder / "config.yml").chmod(mode)
    if secrets:
        (folder / "secrets.yml").write_text(secrets)
        (folder / "secrets.yml").chmod(0o600)
    return Settings.from_env({"MECHA_HOME": str(folder), "HOME": str(tmp_path)})


def test_without_a_url_it_is_sqlite_at_the_db_path(tmp_path: Path) -> None:
    settings = home(tmp_path, config="addr: :1\n")
    chosen = choose_database(settings, {})
    assert chosen == Database(path=settings.db_path) and chosen.kind == "sqlite"
    assert chosen.secret_values() == frozenset()


def test_the_environment_wins_over_config_yml(tmp_path: Path) -> None:
    settings = home(tmp_path, config="database_url: postgresql://file@filehost/filedb\n")
    from_env = Settings.from_env(
        {"MECHA_HOME": str(settings.home), "MECHA_DATABASE_URL": f"postgresql://env:{PASSWORD}@envhost/envdb"}
    )  # fmt: skip
    chosen = choose_database(from_env, {})
    assert chosen.postgres is not None and chosen.kind == "postgresql"
    assert chosen.postgres.shown == "postgresql://env@envhost:5432/envdb"
    assert chosen.postgres.origin == "MECHA_DATABASE_URL"
    assert PASSWORD in chosen.secret_values()
    assert PASSWORD not in repr(from_env) and PASSWORD not in repr(chosen)
    # and without the variable, the file's
    assert choose_database(settings, {}).postgres == parse_url(
        "postgresql://file@filehost/filedb", origin=f"{settings.config_path}:1:15"
    )


def test_a_malformed_environment_url_names_the_variable(tmp_path: Path) -> None:
    settings = home(tmp_path)
    bad = Settings.from_env(
        {"MECHA_HOME": str(settings.home), "MECHA_DATABASE_URL": f"postgresql://u:{PASSWORD}@h"}
    )
    with pytest.raises(ConfigError) as caught:
        choose_database(bad, {})
    assert str(caught.value).startswith("MECHA_DATABASE_URL names no database")
    assert PASSWORD not in str(caught.value)


def test_a_broken_key_elsewhere_in_config_yml_does_not_stop_the_choice(tmp_path: Path) -> None:
    settings = home(tmp_path, config="retention: -3\ndatabase_url: postgresql://db/m\n")
    assert choose_database(settings, {}).postgres is not None


def test_a_config_yml_mistake_is_reported_at_its_line(tmp_path: Path) -> None:
    settings = home(tmp_path, config="addr: :1\ndatabase_url: postgresql://db:0x/m\n")
    with pytest.raises(ConfigFileError) as caught:
        choose_database(settings, {})
    assert f"{settings.config_path}:2:15: database_url has the port" in str(caught.value)


def test_the_password_comes_from_secrets_yml_by_reference(tmp_path: Path) -> None:
    settings = home(
        tmp_path,
        config="database_url: postgresql://mecha@db/mecha\ndatabase_password: postgres.main\n",
        secrets=f"tokens:\n  postgres:\n    main: '{PASSWORD}'\n",
    )
    chosen = with_database(settings, {}).database
    assert chosen is not None and chosen.postgres is not None
    assert chosen.postgres.password == PASSWORD
    assert chosen.postgres.password_from == "secrets.yml (tokens.postgres.main)"
    assert ":Tr0ub4dor%263-horse@" in chosen.postgres.url()
    assert PASSWORD not in chosen.postgres.shown


def test_the_reference_applies_to_the_environment_url_too(tmp_path: Path) -> None:
    settings = home(
        tmp_path, config="database_password: postgres.main\n",
        secrets=f"tokens: {{postgres: {{main: '{PASSWORD}'}}}}\n",
    )  # fmt: skip
    env = Settings.from_env(
        {"MECHA_HOME": str(settings.home), "MECHA_DATABASE_URL": "postgresql://mecha@db/mecha"}
    )
    chosen = choose_database(env, {})
    assert chosen.postgres is not None and chosen.postgres.password == PASSWORD


def test_an_unresolved_reference_says_where_it_was_written(tmp_path: Path) -> None:
    settings = home(
        tmp_path,
        config="database_url: postgresql://mecha@db/mecha\ndatabase_password: postgres.main\n",
        secrets=f"tokens: {{claude: {{default: '{PASSWORD}'}}}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        choose_database(settings, {})
    text = str(caught.value)
    assert text.startswith(f"{settings.config_path}:2:20: database_password: cannot resolve")
    assert 'no tokens for backend "postgres"' in text and PASSWORD not in text


def test_a_password_in_both_places_is_refused(tmp_path: Path) -> None:
    settings = home(tmp_path, config="database_password: postgres.main\n")
    env = Settings.from_env(
        {"MECHA_HOME": str(settings.home), "MECHA_DATABASE_URL": f"postgresql://m:{PASSWORD}@db/m"}
    )
    with pytest.raises(ConfigError) as caught:
        choose_database(env, {})
    assert "MECHA_DATABASE_URL holds a password" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_literal_password_needs_a_private_config_yml(tmp_path: Path) -> None:
    text = f"database_url: postgresql://mecha:{PASSWORD}@db/mecha\n"
    settings = home(tmp_path, config=text, mode=0o644)
    with pytest.raises(SecretsError) as caught:
        choose_database(settings, {})
    assert "database_url holds a password" in str(caught.value)
    assert "chmod 600" in str(caught.value) and PASSWORD not in str(caught.value)
    settings.config_path.chmod(0o600)
    assert choose_database(settings, {}).postgres is not None


def test_a_password_from_the_environment_lets_config_yml_stay_readable(tmp_path: Path) -> None:
    settings = home(
        tmp_path, config="database_url: postgresql://mecha:${PGPASS}@db/mecha\n", mode=0o644
    )
    chosen = choose_database(settings, {"PGPASS": PASSWORD})
    assert chosen.postgres is not None and chosen.postgres.password == PASSWORD


def test_a_chosen_database_is_kept(tmp_path: Path) -> None:
    settings = home(tmp_path)
    chosen = with_database(settings, {})
    assert chosen.database is not None
    assert with_database(chosen, {"MECHA_DATABASE_URL": "x"}) is chosen


def test_targets_compare_by_value() -> None:
    assert PostgresTarget(dbname="m") == PostgresTarget(dbname="m")
