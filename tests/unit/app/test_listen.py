"""resolve_listen: flag > config.yml > default, refusing a weak API key, and closing the API
on a non-loopback address without one."""

from __future__ import annotations

import pytest

from mecha.app.serve import resolve_listen
from mecha.config.server_file import ServerConfig
from mecha.config.sources import GenericSource, SourceAuth
from mecha.errors import UsageError

GOOD = "a" * 16


@pytest.mark.parametrize(
    ("key", "words"),
    [("", "--api-key is blank"), ("\t ", "--api-key is blank"),
     ("a" * 15, "--api-key is 15 characters; an API key needs at least 16")],
)  # fmt: skip
def test_a_blank_or_short_flag_key_is_refused_even_on_loopback(key: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_listen(addr="127.0.0.1:0", api_key=key, insecure=False, config=ServerConfig())
    assert words in str(caught.value)
    assert "openssl rand -hex 24" in (caught.value.hint or "")


def test_a_key_of_the_minimum_length_is_taken_over_the_config_file() -> None:
    config = ServerConfig(api_key="b" * 20)
    listen = resolve_listen(addr="0.0.0.0:0", api_key=GOOD, insecure=False, config=config)
    assert (listen.host, listen.api_key) == ("0.0.0.0", GOOD)
    from_file = resolve_listen(addr="0.0.0.0:0", api_key=None, insecure=False, config=config)
    assert from_file.api_key == "b" * 20


@pytest.mark.parametrize(
    ("addr", "config", "closed"),
    [("0.0.0.0:0", ServerConfig(), True), (None, ServerConfig(addr=":0"), True),
     ("[::]:0", ServerConfig(), True), ("10.1.2.3:0", ServerConfig(), True),
     ("127.0.0.1:0", ServerConfig(), False), ("localhost:0", ServerConfig(), False),
     ("[::1]:0", ServerConfig(), False), ("0.0.0.0:0", ServerConfig(api_key=GOOD), False)],
)  # fmt: skip
def test_a_non_loopback_address_without_a_key_closes_the_api(
    addr: str | None, config: ServerConfig, closed: bool
) -> None:
    listen = resolve_listen(addr=addr, api_key=None, insecure=False, config=config)
    assert listen.api_closed is closed


def test_insecure_keeps_the_api_open() -> None:
    listen = resolve_listen(addr="0.0.0.0:0", api_key=None, insecure=True, config=ServerConfig())
    assert (listen.api_closed, listen.api_key) == (False, "")


def test_a_source_that_takes_the_api_key_is_refused_only_when_the_api_is_closed() -> None:
    source = GenericSource(name="hooks", auth=SourceAuth.API_KEY)
    config = ServerConfig(sources={"hooks": source})
    with pytest.raises(UsageError) as caught:
        resolve_listen(addr="0.0.0.0:0", api_key=None, insecure=False, config=config)
    assert "source 'hooks' uses auth: api_key" in str(caught.value)
    for addr, key, insecure in [("127.0.0.1:0", None, False), ("0.0.0.0:0", GOOD, False),
                                ("0.0.0.0:0", None, True)]:  # fmt: skip
        resolve_listen(addr=addr, api_key=key, insecure=insecure, config=config)
