"""config.yml: server settings and generic sources, every mistake located."""

from __future__ import annotations

import pytest

from mecha.budget import Budget
from mecha.config.server_file import (
    DEFAULT_MAX_DIFF,
    MIN_API_KEY,
    ConfigFileError,
    ServerConfig,
    api_key_problem,
    parse_config,
    parse_size,
)
from mecha.config.sources import GenericSource, SourceAuth


def parse(text: str, **environ: str) -> ServerConfig:
    return parse_config(text, file="config.yml", environ=environ)


def test_an_empty_file_means_every_default() -> None:
    assert parse("") == ServerConfig()


def test_addr_api_key_and_sources_are_read() -> None:
    config = parse(
        "addr: 0.0.0.0:9000\napi_key: ${KEY}\nmax_diff: 2MB\n"
        "sources:\n  alerts:\n    auth: api_key\n    delivery_header: X-Request-Id\n",
        KEY="s3cret-0123456789abc",
    )
    assert (config.addr, config.api_key, config.max_diff) == (
        "0.0.0.0:9000",
        "s3cret-0123456789abc",
        2_000_000,
    )
    assert config.sources == {
        "alerts": GenericSource(
            name="alerts", auth=SourceAuth.API_KEY, delivery_header="X-Request-Id"
        )
    }


def test_a_source_with_no_settings_takes_the_defaults() -> None:
    config = parse("sources:\n  ci:\n")
    assert config.sources["ci"] == GenericSource(name="ci")


def test_the_api_key_never_shows_in_the_repr() -> None:
    assert "s3cret-0123456789abc" not in repr(parse("api_key: s3cret-0123456789abc\n"))


@pytest.mark.parametrize(
    ("text", "environ", "words"),
    [
        ("api_key: ' '\n", {}, "api_key is blank"),
        ("api_key: short-key\n", {}, "api_key is 9 characters; an API key needs at least 16"),
        ("api_key: ${KEY}\n", {"KEY": "abc"}, "api_key (after expanding ${...}) is 3 characters"),
        ("api_key: ${KEY}\n", {"KEY": "   "}, "api_key (after expanding ${...}) is blank"),
    ],
)
def test_a_blank_or_short_api_key_is_located(
    text: str, environ: dict[str, str], words: str
) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse(text, **environ)
    message = str(caught.value)
    assert "config.yml:1:10" in message and words in message
    assert "openssl rand -hex 24" in message
    if key := environ.get("KEY", "short-key").strip():
        assert key not in message  # the key itself is never shown


def test_an_empty_api_key_is_no_key() -> None:
    """As if absent: a loopback server needs none (a public one is refused without)."""
    assert parse("api_key: ''\n").api_key == ""
    assert parse("api_key: ${KEY:-}\n").api_key == ""


def test_api_key_problem_names_the_minimum_and_accepts_it() -> None:
    assert api_key_problem("x" * MIN_API_KEY) == ""
    assert "at least 16" in api_key_problem("x" * (MIN_API_KEY - 1))
    assert api_key_problem("\t \n") == "is blank"


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("api_key: k3y-0123456789abcdef\n", True),
        ("api_key: ${KEY}\n", False),
        ("api_key: ${NOT_SET:-k3y-0123456789abcdef}\n", True),
        ("api_key: ${KEY:-}\n", False),
        ("addr: ':0'\n", False),
    ],
)
def test_whether_the_file_itself_holds_the_key(text: str, literal: bool) -> None:
    assert parse(text, KEY="env-key-0123456789abc").api_key_literal is literal


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("adr: x\n", "config.yml:1:1", 'did you mean "addr"'),
        ("api_key: ${NOPE}\n", "config.yml:1:10", "NOPE"),
        ("max_diff: lots\n", "config.yml:1:11", "positive size"),
        ("max_diff: 0\n", "config.yml:1:11", "positive size"),
        ("github_api_url: ftp://x\n", "config.yml:1:17", "http(s) URL"),
        ("sources:\n  github: {}\n", "config.yml:2:3", "built in"),
        ("sources:\n  Bad Name: {}\n", "config.yml:2:3", "a-z"),
        ("sources:\n  ci:\n    auth: basic\n", "config.yml:3:11", "hmac or api_key"),
        ("sources:\n  ci:\n    type_hdr: X\n", "config.yml:3:5", 'did you mean "type_header"'),
        ("sources: [a]\n", "config.yml:1:10", "mapping"),
    ],
)
def test_each_mistake_is_located_with_what_to_do(text: str, where: str, words: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse(text)
    shown = str(caught.value)
    assert where in shown
    assert words in shown


def test_all_mistakes_are_reported_at_once() -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse("adr: x\nmax_diff: none\n")
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize(
    ("text", "size"),
    [("500KB", 500_000), ("1MiB", 1_048_576), ("2 mb", 2_000_000), ("123", 123), (77, 77)],
)
def test_sizes_read_with_units(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_default_diff_cap_is_500_kb() -> None:
    assert parse("addr: :1\n").max_diff == DEFAULT_MAX_DIFF == 500_000


def test_the_global_budget_is_read() -> None:
    assert parse("").budget is None
    found = parse("budget:\n  tokens_per_day: 1000000\n  tasks_per_hour: 200\n"
                  "  per_task: 5000\n  budget_wait: 6h\n").budget  # fmt: skip
    assert found == Budget(tokens_per_day=1_000_000, tasks_per_hour=200, per_task=5000,
                           budget_wait=21_600.0)  # fmt: skip
    assert parse("budget:\n  budget_wait: 90\n").budget == Budget(budget_wait=90.0)


@pytest.mark.parametrize("text,where,words", [
    ("budget:\n  tokens_per_day: -1\n", "config.yml:2:19:",
     "budget.tokens_per_day is -1; it must be a whole number of 0 or more"),
    ("budget:\n  tasks_per_hour: true\n", "config.yml:2:19:",
     "budget.tasks_per_hour is true; it must be a whole number"),
    ("budget:\n  tasks_per_hour: '30'\n", "config.yml:2:19:", 'is "30"; it must be a whole'),
    ("budget:\n  per_task: 0\n", "config.yml:2:13:", "budget.per_task is 0; it must be a whole "
     "number of 1 or more"),
    ("budget:\n  budget_wait: -3s\n", "config.yml:2:16:",
     'budget.budget_wait is "-3s"; it must be a duration of 0 or more'),
    ("budget:\n  budget_wait: [1]\n", "config.yml:2:16:", "must be a duration"),
    ("budget:\n  tokens_per_dai: 3\n", "config.yml:2:3:", 'did you mean "tokens_per_day"?'),
    ("budget: 7\n", "config.yml:1:9:", "budget must be a mapping"),
])  # fmt: skip
def test_a_bad_global_budget_is_located(text: str, where: str, words: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse(text)
    [problem] = caught.value.problems
    assert str(problem).startswith(where) and words in str(problem), str(problem)


def test_whole_valued_floats_are_whole_numbers_and_fractions_are_not() -> None:
    """As in worker files and policies (issue 20): 16.0 is 16; 16.5 is a located mistake."""
    config = parse(
        "max_diff: 200000.0\ndispatch: {concurrency: 16.0}\nwriteback: {attempts: 3.0}\n"
        "budget: {tasks_per_hour: 200.0}\n"
    )
    assert config.max_diff == 200_000 and type(config.max_diff) is int
    assert config.dispatch["concurrency"] == 16 and type(config.dispatch["concurrency"]) is int
    assert config.writeback["attempts"] == 3
    assert config.budget is not None and config.budget.tasks_per_hour == 200
    with pytest.raises(ConfigFileError) as caught:
        parse("dispatch: {concurrency: 16.5}\nbudget: {tasks_per_hour: 0.5}\n")
    said = str(caught.value)
    assert "config.yml:1:25: concurrency must be a whole number from 1 to 1024" in said, said
    assert "budget.tasks_per_hour is 0.5; it must be a whole number of 0 or more" in said, said
