"""resolve_listen: flag > config.yml > default, and refusing an exposed or weak API key."""

from __future__ import annotations

import pytest

from mecha.bootstrap import resolve_listen
from mecha.config_file import ServerConfig
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
