"""Generic webhook sources: HMAC and API-key checks, and parsing a JSON event."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from mecha.config.sources import GenericSource, SourceAuth
from mecha.errors import WebhookError
from mecha.forges.generic import parse_generic, verify_generic

SECRET = "alerts-secret"
NEXT_SECRET = "alerts-secret-next"
API_KEY = "server-api-key"
ALERTS = GenericSource(name="alerts")
CUSTOM = GenericSource(
    name="builds",
    type_header="X-Build-Event",
    delivery_header="X-Request-Id",
    signature_header="X-Signature",
    signature_prefix="",
)
KEYED = GenericSource(name="deploys", auth=SourceAuth.API_KEY)
BODY = json.dumps(
    {
        "alert": "disk full",
        "severity": 3,
        "ratio": 0.95,
        "firing": True,
        "labels": {"host": "db1"},
        "hosts": ["db1"],
        "note": None,
        "actor": "prometheus",
        "subject": "db1",
    }
).encode()


def sign(body: bytes, secret: str = SECRET, prefix: str = "sha256=") -> str:
    return prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def refusal(source: GenericSource, headers: dict[str, str], **options: object) -> WebhookError:
    secrets = options.get("secrets", [SECRET])
    api_key = options.get("api_key", "")
    assert isinstance(secrets, list)
    assert isinstance(api_key, str)
    with pytest.raises(WebhookError) as caught:
        verify_generic(source, BODY, headers, secrets=secrets, api_key=api_key)
    assert caught.value.status == 401
    return caught.value


# ---------------------------------------------------------------- verify_generic: hmac


def test_a_signed_delivery_is_accepted() -> None:
    verify_generic(ALERTS, BODY, {"x-hub-signature-256": sign(BODY)}, secrets=[SECRET], api_key="")


def test_the_second_secret_is_accepted_during_rotation() -> None:
    headers = {"x-hub-signature-256": sign(BODY, NEXT_SECRET)}
    verify_generic(ALERTS, BODY, headers, secrets=[SECRET, NEXT_SECRET], api_key="")
    refusal(ALERTS, headers)


def test_the_configured_header_and_prefix_are_used() -> None:
    verify_generic(
        CUSTOM, BODY, {"x-signature": sign(BODY, prefix="")}, secrets=[SECRET], api_key=""
    )
    error = refusal(CUSTOM, {"x-hub-signature-256": sign(BODY)})
    assert error.message == "missing X-Signature header"


def test_a_wrong_signature_is_refused_without_showing_the_secret() -> None:
    error = refusal(ALERTS, {"x-hub-signature-256": sign(BODY, "wrong")})
    assert error.message == "X-Hub-Signature-256 does not match any configured webhook secret"
    assert "sources.alerts.secret" in error.hint
    assert SECRET not in str(error)


def test_a_truncated_signature_is_refused() -> None:
    error = refusal(ALERTS, {"x-hub-signature-256": sign(BODY)[:40]})
    assert "hex digits" in error.message


@pytest.mark.parametrize("secrets", [[], [""]])
def test_without_a_secret_nothing_is_accepted(secrets: list[str]) -> None:
    error = refusal(ALERTS, {"x-hub-signature-256": sign(BODY, "")}, secrets=secrets)
    assert "sources.alerts.secret" in error.hint
    assert "secrets.yml" in error.hint


# ---------------------------------------------------------------- verify_generic: api_key


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {API_KEY}"},
        {"authorization": f"bearer {API_KEY}"},
        {"x-api-key": API_KEY},
        {"authorization": "Bearer wrong", "x-api-key": API_KEY},
    ],
)
def test_the_api_key_is_accepted_in_either_header(headers: dict[str, str]) -> None:
    verify_generic(KEYED, BODY, headers, secrets=[], api_key=API_KEY)


@pytest.mark.parametrize(
    "headers",
    [{"authorization": "Bearer wrong"}, {"x-api-key": "wrong"}, {"authorization": API_KEY}],
)
def test_a_wrong_api_key_is_refused(headers: dict[str, str]) -> None:
    error = refusal(KEYED, headers, api_key=API_KEY)
    assert API_KEY not in str(error)
    assert "wrong" not in str(error)


def test_a_missing_api_key_is_refused() -> None:
    error = refusal(KEYED, {}, api_key=API_KEY)
    assert error.message.startswith("missing API key")


def test_without_a_server_api_key_anything_is_accepted() -> None:
    verify_generic(KEYED, BODY, {}, secrets=[], api_key="")


# ---------------------------------------------------------------- parse_generic


def test_top_level_scalars_become_attributes() -> None:
    delivery = parse_generic(ALERTS, BODY, {"x-event-type": "alert.firing"})
    assert delivery.source == "alerts"
    assert delivery.type == "alert.firing"
    assert delivery.actor == "prometheus"
    assert delivery.subject == "db1"
    assert dict(delivery.attrs) == {
        "alert": "disk full",
        "severity": 3,
        "ratio": "0.95",
        "firing": True,
        "actor": "prometheus",
        "subject": "db1",
    }
    assert delivery.attrs["firing"] is True
    assert delivery.raw == BODY


def test_without_a_delivery_header_the_id_is_a_content_hash() -> None:
    first = parse_generic(ALERTS, BODY, {"x-event-type": "alert.firing"})
    again = parse_generic(ALERTS, BODY, {"x-event-type": "alert.firing"})
    other_type = parse_generic(ALERTS, BODY, {"x-event-type": "alert.resolved"})
    expected = hashlib.sha256(b"alert.firing:" + BODY).hexdigest()[:32]
    assert first.delivery_id == expected
    assert again.delivery_id == expected
    assert other_type.delivery_id != expected


def test_the_configured_delivery_header_is_the_id() -> None:
    headers = {"x-build-event": "build.done", "x-request-id": "req-42"}
    assert parse_generic(CUSTOM, BODY, headers).delivery_id == "req-42"


def test_a_configured_delivery_header_that_is_missing_is_refused() -> None:
    with pytest.raises(WebhookError) as caught:
        parse_generic(CUSTOM, BODY, {"x-build-event": "build.done"})
    assert caught.value.status == 400
    assert caught.value.message == "missing X-Request-Id header"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_type_is_refused(value: str | None) -> None:
    headers = {} if value is None else {"x-event-type": value}
    with pytest.raises(WebhookError) as caught:
        parse_generic(ALERTS, BODY, headers)
    assert caught.value.status == 400
    assert caught.value.message == "missing X-Event-Type header"
    assert "type_header" in caught.value.hint


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "the delivery to source 'alerts' must be a JSON object ({...}), not an array"),
        (
            b"{'a': 1}",
            "the delivery to source 'alerts' is not valid JSON: unexpected character, expected "
            "a string key at line 1 column 2 (char 1)",
        ),
        (
            b"",
            "the delivery to source 'alerts' is not valid JSON: Input is a zero-length, empty "
            "document at line 1 column 1 (char 0)",
        ),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(WebhookError) as caught:
        parse_generic(ALERTS, body, {"x-event-type": "alert.firing"})
    assert caught.value.status == 400
    assert caught.value.message == message


def test_stored_headers_drop_the_api_key() -> None:
    headers = {"x-event-type": "deploy", "x-api-key": API_KEY, "authorization": "Bearer x"}
    stored = parse_generic(KEYED, BODY, headers).headers
    assert stored == {"x-event-type": "deploy"}


def test_numbers_become_what_upstream_printed() -> None:
    """5.0 is the whole number 5 (a filter `count: "5"` and `{{.count}}` agree); a fraction
    is Go's text, ``1.2345675e+06`` from a million up."""
    body = json.dumps({"count": 5.0, "ratio": 0.5, "big": 1234567.5, "tiny": 0.00001}).encode()
    attrs = parse_generic(ALERTS, body, {"x-event-type": "t"}).attrs
    assert dict(attrs) == {"count": 5, "ratio": "0.5", "big": "1.2345675e+06", "tiny": "1e-05"}
    assert type(attrs["count"]) is int
