"""A webhook body naming a key twice in one object is refused with the key and its path
(issue 14, item 6); the quick proof that nothing repeats agrees with an exact oracle."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecha.config.sources import GenericSource
from mecha.errors import WebhookError
from mecha.forges.duplicate_keys import repeated_key
from mecha.forges.generic import parse_generic
from mecha.forges.github.webhook import parse_github
from mecha.forges.gitlab.webhook import parse_gitlab
from mecha.forges.payload import load_json_object
from tests.sample_payloads import load_sample


def refused(body: bytes) -> str:
    with pytest.raises(WebhookError) as caught:
        load_json_object(body, what="body")
    assert caught.value.status == 400
    return caught.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": 1, "a": 1}', 'the body names the key "a" more than once in the object at $'),
        (b'{"pull_request": {"title": "x", "number": 1, "title": "y"}}',
         'the body names the key "title" more than once in the object at $.pull_request'),
        (b'{"x": [0, {"b": [{}, {"c": 1, "\\u0063": 2}]}]}',
         'the body names the key "c" more than once in the object at $.x[1].b[1]'),
        (b'{"a b": {"k" :1,\n "k"\t: 2}}',
         'the body names the key "k" more than once in the object at $["a b"]'),
        (b'{"s": "\\u003a", "t": {"u": 1, "u": 2}}',
         'the body names the key "u" more than once in the object at $.t'),
        (b'{"\\u00e9": {}, "\\u00e9": 0}',
         'the body names the key "\\u00e9" more than once in the object at $'),
    ],
)  # fmt: skip
def test_a_repeated_key_is_refused_with_the_key_and_its_path(body: bytes, message: str) -> None:
    assert refused(body) == message


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": {"b": 1}, "c": {"b": 1}}',  # the same key in two objects
        b'{"a": "b:c", "d": ["e\\":", "f\\\\"], "g\\\\": "::"}',  # colons and escapes in strings
        b'{"a": "\\u003a", "b": "\\\\u003a"}',  # an escaped colon, and text that looks like one
        b'{"a": [{"k": 1}, {"k": 2}]}',
    ],
)
def test_keys_named_once_per_object_are_taken(body: bytes) -> None:
    assert load_json_object(body, what="body") == json.loads(body)


def test_a_body_nested_deeper_than_orjson_writes_is_still_checked() -> None:
    deep = b'{"a":' * 300 + b'{"k": 1, "k": 2}' + b"}" * 300
    message = refused(deep)
    assert message.startswith('the body names the key "k" more than once in the object at $.a.a')
    assert "…" in message  # 300 levels of path, shortened
    fine = b'{"a":' * 300 + b"{}" + b"}" * 300
    assert load_json_object(fine, what="body")


def test_a_long_key_and_path_are_shortened() -> None:
    key = "k" * 5000
    message = refused(json.dumps({key: {key: 1, "x": 2}}).replace('"x"', f'"{key}"').encode())
    assert len(message) < 400 and "…" in message


def test_every_parser_refuses_a_repeated_key() -> None:
    body, headers = load_sample("github", "pull_request.opened")
    twice = body.replace(b'"action": "opened",', b'"action": "opened", "action": "closed",', 1)
    assert twice != body
    with pytest.raises(WebhookError, match='key "action" more than once'):
        parse_github(twice, headers)
    body, headers = load_sample("gitlab", "push")
    twice = body.replace(b'"ref":', b'"ref": "x", "ref":', 1)
    with pytest.raises(WebhookError) as caught:
        parse_gitlab(twice, headers)
    assert caught.value.message.endswith('key "ref" more than once in the object at $')
    source = GenericSource(name="alerts")
    with pytest.raises(WebhookError, match='key "x" more than once'):
        parse_generic(source, b'{"x": 1, "x": 2}', {"x-event-type": "fired"})


# ---------------------------------------------------------------- against an exact oracle

_KEYS = st.sampled_from(["a", "b", "c", ":", "a:b", '"', "\\", "é", "\u2028"])
_SCALARS = st.none() | st.booleans() | st.integers() | st.text(alphabet=':"\\ab\x01é', max_size=4)


@st.composite
def json_texts(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON text whose objects may repeat keys, with varied spacing and string escapes."""
    space = draw(st.sampled_from(["", " ", "\n", "\t "]))
    kind = draw(st.sampled_from(["object", "array", "scalar"] if depth < 3 else ["scalar"]))
    if kind == "scalar":
        return _encode(draw(_SCALARS), draw)
    children = draw(st.lists(json_texts(depth + 1), max_size=4))
    if kind == "array":
        return "[" + space + ("," + space).join(children) + space + "]"
    keys = draw(st.lists(_KEYS, min_size=len(children), max_size=len(children)))
    pairs = [f"{_encode(k, draw)}{space}:{space}{v}" for k, v in zip(keys, children, strict=True)]
    return "{" + space + ("," + space).join(pairs) + space + "}"


def _encode(value: Any, draw: st.DrawFn) -> str:
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if isinstance(value, str) and draw(st.booleans()):
        text = text.replace(":", "\\u003" + draw(st.sampled_from("aA")))  # the same string
    return text


def _has_repeat(text: str) -> bool:
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        found |= len({key for key, _ in items}) != len(items)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return found


@settings(max_examples=500)
@given(json_texts())
def test_the_quick_check_agrees_with_an_exact_oracle(text: str) -> None:
    body = text.encode()
    assert (repeated_key(body, orjson.loads(body)) is not None) == _has_repeat(text)
