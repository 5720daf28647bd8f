"""MECHA_* variables: each kind of setting read from the environment with config.yml's own
checks, flag > environment > file > default, and where each setting came from."""

from __future__ import annotations

import pytest

from mecha.budget import Budget
from mecha.config.environment import VARIABLES, SettingsError, resolve_server
from mecha.config.retention import DAY, RETENTION_KINDS
from mecha.config.server_file import ServerConfig
from mecha.errors import UsageError
from mecha.yaml_doc import Document, load_yaml

KEY = "env-key-0123456789abcdef"


def resolve(
    text: str = "", flags: dict[str, str | None] | None = None, /, **environ: str
) -> ServerConfig:
    doc = load_yaml(text, file="/h/config.yml") if text else Document(None, "/h/config.yml")
    return resolve_server(doc, environ, shown_file="config.yml", flags=flags)


def refused(text: str = "", **environ: str) -> str:
    with pytest.raises(SettingsError) as caught:
        resolve(text, **environ)
    return str(caught.value)


def test_every_setting_has_a_variable_named_after_its_key() -> None:
    names = {v.name: v.key for v in VARIABLES}
    assert names["MECHA_ADDR"] == "addr" and names["MECHA_API_KEY"] == "api_key"
    assert names["MECHA_DISPATCH_CONCURRENCY"] == "dispatch.concurrency"
    assert names["MECHA_WRITEBACK_ATTEMPTS"] == "writeback.attempts"
    assert names["MECHA_RETENTION_EVENTS"] == "retention.events"
    assert names["MECHA_BUDGET_TOKENS_PER_DAY"] == "budget.tokens_per_day"
    assert names["MECHA_MAX_DIFF"] == "max_diff"
    keys = {v.key.partition(".")[0] for v in VARIABLES}
    from mecha.config.server_file import _KEYS

    # sources: and database_password: stay config.yml's; database_url is MECHA_DATABASE_URL,
    # read where the database is chosen
    assert set(_KEYS) - keys == {"sources", "database_url", "database_password"}


def test_without_variables_or_file_every_setting_is_the_default() -> None:
    config = resolve()
    assert config == ServerConfig() and config.origins == {}


def test_text_settings_are_taken_as_given() -> None:
    config = resolve(MECHA_ADDR="0.0.0.0:21212", MECHA_API_KEY="1234567890123456789")
    assert config.addr == "0.0.0.0:21212"
    assert config.api_key == "1234567890123456789"  # digits stay text, not a number
    assert config.origins["addr"] == "env MECHA_ADDR"


def test_an_api_key_from_the_environment_is_kept_whole_and_is_not_the_file_s() -> None:
    key = "$${KEY}$x-0123456789abcdef"
    config = resolve("addr: :1\n", MECHA_API_KEY=key)
    assert config.api_key == key  # not expanded as config.yml's ${...} would be
    assert not config.api_key_literal  # config.yml need not be private for it


def test_sizes_read_with_the_file_s_units() -> None:
    config = resolve(MECHA_MAX_DIFF="2MB", MECHA_MAX_RESULT="65536")
    assert (config.max_diff, config.max_result) == (2_000_000, 65536)


def test_durations_take_units_or_plain_seconds_as_the_file_does() -> None:
    config = resolve(MECHA_DISPATCH_RETRY_BASE="45", MECHA_DISPATCH_RETRY_CAP="1h30m",
                     MECHA_WRITEBACK_RETRY_BASE="0.5")  # fmt: skip
    assert config.dispatch == {"retry_base": 45.0, "retry_cap": 5400.0}
    assert config.writeback == {"retry_base": 0.5}


def test_counts_are_whole_numbers() -> None:
    config = resolve(MECHA_DISPATCH_CONCURRENCY="8", MECHA_WRITEBACK_ATTEMPTS="3")
    assert (config.dispatch, config.writeback) == ({"concurrency": 8}, {"attempts": 3})


def test_retention_for_every_kind_and_one_kind_over_it() -> None:
    config = resolve(MECHA_RETENTION="7", MECHA_RETENTION_EVENTS="off",
                     MECHA_RETENTION_INTERVAL="1m")  # fmt: skip
    assert config.retention.events is None
    assert [config.retention.kept(k) for k in ("tasks", "timeline", "writes")] == [7 * DAY] * 3
    assert config.retention.interval == 60
    assert config.origins["retention.tasks"] == "env MECHA_RETENTION"
    assert config.origins["retention.events"] == "env MECHA_RETENTION_EVENTS"


def test_one_retention_kind_over_the_file_s_retention_for_all() -> None:
    config = resolve("retention: 3\n", MECHA_RETENTION_WRITES="12h")
    assert config.retention.writes == 12 * 3600
    assert config.retention.events == 3 * DAY
    assert config.origins["retention.events"] == "config.yml:1"
    assert config.origins["retention.writes"] == "env MECHA_RETENTION_WRITES"


def test_budget_keys_join_the_file_s_budget() -> None:
    config = resolve("budget:\n  tokens_per_day: 1000\n", MECHA_BUDGET_TASKS_PER_HOUR="20",
                     MECHA_BUDGET_BUDGET_WAIT="1h")  # fmt: skip
    assert config.budget == Budget(tokens_per_day=1000, tasks_per_hour=20, budget_wait=3600.0)
    assert config.origins["budget.tokens_per_day"] == "config.yml:2"


def test_the_environment_wins_over_the_file_key_by_key() -> None:
    text = "addr: 127.0.0.1:1\ndispatch:\n  concurrency: 3\n  retry_base: 5s\nmax_diff: 1MB\n"
    config = resolve(text, MECHA_DISPATCH_CONCURRENCY="9", MECHA_ADDR="127.0.0.1:2")
    assert config.dispatch == {"concurrency": 9, "retry_base": 5.0}  # the file's other key kept
    assert config.addr == "127.0.0.1:2" and config.max_diff == 1_000_000
    assert config.origins == {
        "addr": "env MECHA_ADDR", "dispatch.concurrency": "env MECHA_DISPATCH_CONCURRENCY",
        "dispatch.retry_base": "config.yml:4", "max_diff": "config.yml:5",
    }  # fmt: skip


def test_a_flag_wins_over_the_environment_and_the_file() -> None:
    text = "addr: 127.0.0.1:1\napi_key: file-key-0123456789abc\n"
    flags: dict[str, str | None] = {"addr": "127.0.0.1:3", "api_key": KEY}
    config = resolve(text, flags, MECHA_ADDR="127.0.0.1:2", MECHA_API_KEY="env-" + KEY)
    assert (config.addr, config.api_key) == ("127.0.0.1:3", KEY)
    assert config.origins["addr"] == "flag --addr"
    assert config.origins["api_key"] == "flag --api-key"
    unflagged = resolve(text, {"addr": None, "api_key": None}, MECHA_ADDR="127.0.0.1:2")
    assert unflagged.origins["addr"] == "env MECHA_ADDR"
    assert unflagged.origins["api_key"] == "config.yml:2"


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ({"api_key": "short"}, "--api-key is 5 characters"),
        ({"addr": "nope"}, 'address "nope" is not host:port'),
    ],
)
def test_a_bad_flag_is_a_usage_error_naming_it(flags: dict[str, str | None], words: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve("", flags)
    assert words in str(caught.value)


def test_an_empty_variable_is_unset() -> None:
    config = resolve("addr: 127.0.0.1:1\n", MECHA_ADDR="", MECHA_API_KEY="")
    assert (config.addr, config.api_key) == ("127.0.0.1:1", "")
    assert config.origins["addr"] == "config.yml:1"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("MECHA_DISPATCH_CONCURRENCY", "x", "concurrency must be a whole number from 1 to 1024"),
        ("MECHA_DISPATCH_CONCURRENCY", "0", "concurrency must be a whole number from 1 to 1024"),
        ("MECHA_WRITEBACK_ATTEMPTS", "2.5", "attempts must be a whole number from 1 to 100"),
        ("MECHA_DISPATCH_RETRY_CAP", "soon", "retry_cap must be a positive duration"),
        ("MECHA_DISPATCH_LEASE", "true", "lease must be a positive duration"),
        ("MECHA_MAX_DIFF", "-3", "max_diff must be a positive size"),
        ("MECHA_MAX_RESULT", "2KB", "it must be a size of at least 10KB"),
        ("MECHA_RETENTION_TASKS", "a week", "retention.tasks is \"a week\", not a number of days"),
        ("MECHA_RETENTION_INTERVAL", "0", "it must be a duration of at least 1s"),
        ("MECHA_BUDGET_PER_TASK", "0", "budget.per_task is 0; it must be a whole number of 1"),
        ("MECHA_ADDR", "localhost", 'address "localhost" is not host:port'),
        ("MECHA_GITHUB_API_URL", "ghe.example", "github_api_url must be an http(s) URL"),
    ],
)  # fmt: skip
def test_a_bad_value_names_the_variable_and_what_it_was_set_to(
    variable: str, value: str, words: str
) -> None:
    message = refused(**{variable: value})
    assert message.startswith("1 problem in the environment:")
    assert f'{variable}="{value}": ' in message and words in message
    assert "hint: " in message


def test_every_bad_variable_and_file_mistake_is_reported_at_once() -> None:
    message = refused("max_diff: big\n", MECHA_DISPATCH_CONCURRENCY="many", MECHA_ADDR="x")
    assert message.startswith("3 problems in /h/config.yml and the environment:")
    assert "/h/config.yml:1:11: max_diff must be a positive size" in message
    assert 'MECHA_DISPATCH_CONCURRENCY="many"' in message and 'MECHA_ADDR="x"' in message


def test_a_bad_api_key_never_shows_the_key() -> None:
    message = refused(MECHA_API_KEY="sh0rt-s3cret")
    assert "MECHA_API_KEY: api_key is 12 characters; an API key needs at least 16" in message
    assert "sh0rt-s3cret" not in message
    assert "(after expanding" not in message


def test_upstream_s_and_older_names_are_read_too() -> None:
    config = resolve(GITHUB_API_URL="https://ghe.example/api/v3/", MECHA_LEASE="5s",
                     MECHA_DRAIN_TIMEOUT="300ms")  # fmt: skip
    assert config.github_api_url == "https://ghe.example/api/v3"
    assert config.dispatch == {"lease": 5.0, "drain_timeout": 0.3}
    assert config.origins["github_api_url"] == "env GITHUB_API_URL"
    assert config.origins["dispatch.lease"] == "env MECHA_LEASE"
    same = resolve(GITHUB_API_URL="https://a.example", MECHA_GITHUB_API_URL="https://a.example")
    assert same.origins["github_api_url"] == "env GITHUB_API_URL"


def test_an_old_name_set_to_another_value_than_the_regular_one_is_a_mistake() -> None:
    message = refused(MECHA_LEASE="5s", MECHA_DISPATCH_LEASE="7s")
    assert "MECHA_LEASE and MECHA_DISPATCH_LEASE: both are set, to different values" in message
    assert "keep one" in message


def test_a_section_the_file_got_wrong_is_reported_not_overwritten() -> None:
    message = refused("dispatch: 5\n", MECHA_DISPATCH_CONCURRENCY="4")
    assert "config.yml:1:11: dispatch must be a mapping" in message


def test_a_source_s_origin_is_its_line() -> None:
    config = resolve("addr: :1\nsources:\n  alerts:\n    auth: api_key\n")
    assert config.origins["sources.alerts"] == "config.yml:3"


def test_retention_kinds_all_have_variables() -> None:
    names = {v.name for v in VARIABLES}
    assert {f"MECHA_RETENTION_{kind.upper()}" for kind in RETENTION_KINDS} <= names


def test_a_malformed_address_in_the_file_is_located() -> None:
    message = refused("addr: localhost\n")
    assert '/h/config.yml:1:7: address "localhost" is not host:port' in message
