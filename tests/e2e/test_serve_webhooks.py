"""A real `mecha serve` on a loopback port: signatures, durability, dedupe, refusals."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mecha.forges.signing import gitlab_headers, standard_webhook_headers
from mecha.testing.serve_process import ServeProcess
from tests.e2e.serving import (
    GITHUB_SECRET,
    GITHUB_SECRET_NEXT,
    GITLAB_SIGNING,
    GITLAB_TOKEN,
    SOURCE_SECRET,
    count_events,
    make_home,
    post_github,
    pr_payload,
)

CONFIG = (
    "sources:\n"
    "  alerts:\n    signature_header: X-Alert-Signature\n    delivery_header: X-Alert-Id\n"
    "  ci:\n    auth: api_key\n"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Path]]:
    home = make_home(tmp_path_factory.mktemp("serve"), config=CONFIG)
    with ServeProcess(home) as server:
        yield server, home


@pytest.fixture
def url(served: tuple[ServeProcess, Path]) -> str:
    return served[0].url


@pytest.fixture
def home(served: tuple[ServeProcess, Path]) -> Path:
    return served[1]


def test_a_signed_delivery_is_stored_before_the_202(url: str, home: Path) -> None:
    before = count_events(home)
    answer = post_github(url, pr_payload())
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["status"], body["type"]) == ("received", "pull_request.opened")
    assert count_events(home) == before + 1  # committed when the answer arrived
    shown = httpx.get(f"{url}/event/{body['id']}").json()
    assert shown["attrs"]["number"] == 7
    assert shown["raw"] == pr_payload().decode()


def test_a_rotated_second_secret_is_accepted(url: str) -> None:
    assert post_github(url, pr_payload(), secret=GITHUB_SECRET_NEXT).status_code == 202


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"X_Hub_Signature_256": "sha256=" + "0" * 64}, "does not match"),
        ({"X_Hub_Signature_256": ""}, "missing"),
        ({"X_Hub_Signature_256": "", "X_Hub_Signature": "sha1=" + "0" * 40}, "sha1"),
        ({"X_Hub_Signature_256": "sha256=abc123"}, ""),
        ({"X_Hub_Signature_256": "md5=" + "0" * 64}, ""),
    ],
    ids=["wrong", "missing", "sha1-only", "truncated", "wrong-prefix"],
)
def test_bad_signatures_are_refused_and_nothing_is_written(
    url: str, home: Path, override: dict[str, str], words: str
) -> None:
    before = count_events(home)
    answer = post_github(url, pr_payload(), **override)
    assert answer.status_code == 401
    assert words.lower() in answer.json()["error"].lower()
    assert count_events(home) == before


def test_a_truncated_body_fails_the_signature(url: str, home: Path) -> None:
    body = pr_payload()
    good = post_github(url, body, delivery="cut-body")  # signed over the whole body ...
    assert good.status_code == 202
    sig = good.request.headers["X-Hub-Signature-256"]
    cut = post_github(url, body[:-10], delivery="cut-body-2", X_Hub_Signature_256=sig)
    assert cut.status_code == 401


def test_the_signature_is_checked_before_the_json_is_parsed(url: str, home: Path) -> None:
    before = count_events(home)
    answer = post_github(url, b"{not json", secret="wrong-secret")
    assert answer.status_code == 401  # not 400: the body was never parsed
    assert count_events(home) == before


def test_malformed_json_with_a_good_signature_is_a_400_with_the_reason(
    url: str, home: Path
) -> None:
    before = count_events(home)
    answer = post_github(url, b'{"action": "opened",}')
    assert answer.status_code == 400
    assert "line 1" in answer.json()["error"] or "column" in answer.json()["error"]
    assert count_events(home) == before


def test_ping_is_answered_and_not_stored(url: str, home: Path) -> None:
    before = count_events(home)
    answer = post_github(url, b'{"zen": "Keep it logically awesome.", "hook_id": 1}', event="ping")
    assert answer.status_code == 200
    assert answer.json()["status"] == "pong"
    assert count_events(home) == before


def test_fifty_concurrent_first_deliveries_store_one(url: str, home: Path) -> None:
    body = pr_payload(number=51)
    delivery = str(uuid.uuid4())
    headers = _github_headers(body, delivery)

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(client.post(f"{url}/webhook/github", content=body, headers=headers)
                      for _ in range(50))
                )
            )  # fmt: skip

    before = count_events(home)
    replies = asyncio.run(fire())
    codes = sorted(r.status_code for r in replies)
    assert codes == [200] * 49 + [202]
    assert {r.json()["status"] for r in replies if r.status_code == 200} == {"duplicate"}
    assert count_events(home) == before + 1


def _github_headers(body: bytes, delivery: str) -> dict[str, str]:
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


def _gitlab_mr() -> bytes:
    return json.dumps(
        {
            "object_kind": "merge_request",
            "user": {"username": "root"},
            "project": {"id": 3, "path_with_namespace": "group/app"},
            "object_attributes": {
                "iid": 5, "title": "MR", "description": "", "action": "open",
                "source_branch": "fix", "target_branch": "main",
                "last_commit": {"id": "c" * 40},
            },
        }
    ).encode()  # fmt: skip


def test_gitlab_secret_token_is_accepted_and_the_type_normalised(url: str, home: Path) -> None:
    headers = gitlab_headers(token=GITLAB_TOKEN, event="merge_request", delivery_id="gl-1")
    answer = httpx.post(f"{url}/webhook/gitlab", content=_gitlab_mr(), headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["type"] == "merge_request.open"
    stored = httpx.get(f"{url}/event/{answer.json()['id']}").json()
    assert "x-gitlab-token" not in stored["headers"]  # the secret is not kept


def test_gitlab_wrong_token_is_refused(url: str, home: Path) -> None:
    headers = gitlab_headers(token="nope", event="merge_request", delivery_id="gl-2")
    before = count_events(home)
    assert (
        httpx.post(f"{url}/webhook/gitlab", content=_gitlab_mr(), headers=headers).status_code
        == 401
    )
    assert count_events(home) == before


@pytest.mark.parametrize(("age", "status"), [(0, 202), (-30, 202), (-400, 401), (400, 401)])
def test_gitlab_signing_token_checks_signature_and_time(url: str, age: int, status: int) -> None:
    body = _gitlab_mr()
    message = f"msg-{uuid.uuid4()}"
    headers = standard_webhook_headers(
        body, secret=GITLAB_SIGNING, message_id=message, timestamp=int(time.time()) + age
    )
    headers.update({"X-Gitlab-Event": "Merge Request Hook", "Idempotency-Key": message})
    answer = httpx.post(f"{url}/webhook/gitlab", content=body, headers=headers)
    assert answer.status_code == status, answer.text


def test_gitlab_signing_token_with_a_wrong_signature_is_refused(url: str) -> None:
    body = _gitlab_mr()
    headers = standard_webhook_headers(
        body, secret="whsec_" + base64.b64encode(b"other").decode(), message_id="m",
        timestamp=int(time.time()),
    )  # fmt: skip
    headers.update({"X-Gitlab-Event": "Merge Request Hook", "Idempotency-Key": "m-wrong"})
    assert httpx.post(f"{url}/webhook/gitlab", content=body, headers=headers).status_code == 401


def test_a_generic_source_checks_its_hmac_and_dedupes_on_its_header(url: str, home: Path) -> None:
    body = b'{"severity": "high", "service": "api"}'
    digest = hmac.new(SOURCE_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Event-Type": "alert.fired", "X-Alert-Id": "alert-1",
        "X-Alert-Signature": f"sha256={digest}",
    }  # fmt: skip
    first = httpx.post(f"{url}/webhook/alerts", content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["type"] == "alert.fired"
    again = httpx.post(f"{url}/webhook/alerts", content=body, headers=headers)
    assert again.json()["status"] == "duplicate"
    headers["X-Alert-Signature"] = "sha256=" + "0" * 64
    assert httpx.post(f"{url}/webhook/alerts", content=body, headers=headers).status_code == 401


def test_a_generic_source_without_a_delivery_header_dedupes_on_content(url: str) -> None:
    body = b'{"job": "build", "status": "failed"}'
    headers = {"X-Event-Type": "job.failed"}
    assert httpx.post(f"{url}/webhook/ci", content=body, headers=headers).status_code == 202
    again = httpx.post(f"{url}/webhook/ci", content=body, headers=headers)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")


def test_an_unknown_source_is_a_404_naming_the_known_ones(url: str) -> None:
    answer = httpx.post(f"{url}/webhook/bitbucket", content=b"{}")
    assert answer.status_code == 404
    assert answer.json()["error"] == "unknown source: bitbucket"
    assert "alerts" in answer.json()["hint"]


def test_a_body_over_25_mb_is_a_413_and_nothing_is_written(url: str, home: Path) -> None:
    before = count_events(home)
    body = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    answer = post_github(url, body)
    assert answer.status_code == 413
    assert "25 MB" in answer.json()["error"]
    assert count_events(home) == before


def test_events_are_listed_newest_first(url: str) -> None:
    post_github(url, pr_payload(number=901))
    post_github(url, pr_payload(number=902))
    listed = httpx.get(f"{url}/events", params={"limit": 2}).json()
    assert [e["attrs"]["number"] for e in listed] == [902, 901]


def test_an_unknown_event_id_is_a_json_404(url: str) -> None:
    answer = httpx.get(f"{url}/event/{'f' * 32}")
    assert answer.status_code == 404
    assert "no event" in answer.json()["error"]
