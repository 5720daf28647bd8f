"""Whatever a `POST /task` body holds, the answer is a checked request or a 400, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mecha.server.tasks_api import Refused, parse_task_request

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
BODIES = st.dictionaries(st.sampled_from(["prompt", "worker", "context", "promt"]), JSON)


def _check(body: bytes) -> None:
    try:
        asked = parse_task_request(body)
    except Refused as refused:
        assert refused.response.status_code == 400
        return
    assert asked.prompt.strip()
    # what is stored and answered must encode as strict JSON (the response would 500 otherwise)
    json.dumps([asked.prompt, asked.worker, dict(asked.context)], allow_nan=False).encode()


@given(st.binary(max_size=200))
def test_any_bytes_are_a_request_or_a_400(body: bytes) -> None:
    _check(body)


@given(BODIES)
def test_any_json_object_is_a_request_or_a_400(data: dict[str, Any]) -> None:
    _check(json.dumps(data).encode())


def test_a_well_formed_request_is_read_whole() -> None:
    asked = parse_task_request(b'{"prompt": "hi", "worker": " alpha ", "context": {"n": 1}}')
    assert (asked.prompt, asked.worker, dict(asked.context)) == ("hi", "alpha", {"n": 1})
