"""Which request headers an event keeps, and which delivery ids are accepted."""

from __future__ import annotations

import pytest

from mecha.errors import WebhookError
from mecha.event import MAX_DELIVERY_ID, MAX_STORED_HEADER, checked_delivery_id, stored_headers


def test_only_listed_and_common_headers_are_kept_lowercase() -> None:
    sent = {
        "Content-Type": "application/json",
        "X-Event": "push",
        "X-Other": "v",
        "User-Agent": "u",
    }
    assert stored_headers(sent, ["x-event"]) == {
        "content-type": "application/json", "user-agent": "u", "x-event": "push",
    }  # fmt: skip


def test_a_secret_header_is_never_kept_even_when_listed() -> None:
    sent = {"x-gitlab-token": "s3cret", "authorization": "Bearer t", "x-api-key": "k"}
    assert stored_headers(sent, ["X-Gitlab-Token", "Authorization", "X-API-Key"]) == {}


def test_a_long_value_is_cut() -> None:
    kept = stored_headers({"x-event": "e" * 5000}, ["x-event"])
    assert kept["x-event"] == "e" * MAX_STORED_HEADER


@pytest.mark.parametrize("value", ["7b1c-44", "a.b_c:d-E9", "x" * MAX_DELIVERY_ID])
def test_a_sane_delivery_id_is_taken(value: str) -> None:
    assert checked_delivery_id(value, "X-Id") == value


@pytest.mark.parametrize(
    "value", ["x" * (MAX_DELIVERY_ID + 1), "a b", "a\nb", "a\x00b", "a/b", "é", "a%0A"]
)
def test_an_unsafe_delivery_id_is_refused_naming_the_header(value: str) -> None:
    with pytest.raises(WebhookError) as caught:
        checked_delivery_id(value, "X-Id")
    assert caught.value.status == 400
    assert "X-Id" in caught.value.message
