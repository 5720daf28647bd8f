"""GitHub webhooks: signature checks and parsing, against GitHub's published payloads."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from mecha.errors import WebhookError
from mecha.event import AttrValue
from mecha.forges.github.webhook import parse_github, verify_github
from tests.sample_payloads import load_sample

SECRET = "It's a Secret to Everybody"
NEXT_SECRET = "the-rotated-secret"


def sign(body: bytes, secret: str = SECRET) -> str:
    """What GitHub puts in X-Hub-Signature-256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def refusal(body: bytes, headers: dict[str, str], secrets: list[str]) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        verify_github(body, headers, secrets=secrets)
    return caught.value


# ---------------------------------------------------------------- verify_github


def test_githubs_documented_test_vector_verifies() -> None:
    """GitHub's "Validating webhook deliveries" example: this secret, this body, this digest."""
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_github(b"Hello, World!", {"x-hub-signature-256": signature}, secrets=[SECRET])


def test_a_signed_sample_verifies() -> None:
    body, headers = load_sample("github", "pull_request.opened")
    verify_github(body, {**headers, "x-hub-signature-256": sign(body)}, secrets=[SECRET])


def test_the_second_secret_is_accepted_during_rotation() -> None:
    body, headers = load_sample("github", "push")
    signed = {**headers, "x-hub-signature-256": sign(body, NEXT_SECRET)}
    verify_github(body, signed, secrets=[SECRET, NEXT_SECRET])
    error = refusal(body, signed, [SECRET])
    assert error.status == 401


def test_uppercase_hex_is_accepted() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    verify_github(
        body,
        {"x-hub-signature-256": sign(body).upper().replace("SHA256=", "sha256=")},
        secrets=[SECRET],
    )


def test_a_wrong_digest_is_refused_without_showing_the_secret() -> None:
    body, headers = load_sample("github", "issues.opened")
    error = refusal(body, {**headers, "x-hub-signature-256": sign(body, "not-it")}, [SECRET])
    assert error.status == 401
    assert error.message == "X-Hub-Signature-256 does not match any configured webhook secret"
    assert "github.webhook_secret" in error.hint
    assert SECRET not in str(error)


def test_a_changed_body_is_refused() -> None:
    body, headers = load_sample("github", "issues.opened")
    signed = {**headers, "x-hub-signature-256": sign(body)}
    error = refusal(body.replace(b"Spelling", b"Spel1ing"), signed, [SECRET])
    assert "does not match" in error.message


def test_a_missing_signature_is_refused() -> None:
    body, headers = load_sample("github", "ping")
    error = refusal(body, headers, [SECRET])
    assert error.status == 401
    assert error.message == "missing X-Hub-Signature-256 header"


def test_a_sha1_only_signature_is_refused() -> None:
    body, headers = load_sample("github", "ping")
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    error = refusal(body, {**headers, "x-hub-signature": sha1}, [SECRET])
    assert error.status == 401
    assert error.message.startswith("sha1 signatures (X-Hub-Signature) are not accepted")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sha1=" + "0" * 64, "X-Hub-Signature-256 does not start with 'sha256='"),
        ("0" * 64, "X-Hub-Signature-256 does not start with 'sha256='"),
        ("sha256=" + "g" * 64, "X-Hub-Signature-256 is not a hex digest after 'sha256='"),
        ("sha256=", "X-Hub-Signature-256 is not a hex digest after 'sha256='"),
    ],
)
def test_malformed_signatures_are_refused(value: str, expected: str) -> None:
    error = refusal(b"{}", {"x-hub-signature-256": value}, [SECRET])
    assert error.status == 401
    assert error.message == expected


def test_a_truncated_digest_is_refused_even_when_it_is_a_prefix_of_the_right_one() -> None:
    body = b'{"action": "opened"}'
    error = refusal(body, {"x-hub-signature-256": sign(body)[:-2]}, [SECRET])
    assert error.status == 401
    assert error.message.startswith("X-Hub-Signature-256 has 62 hex digits")


@pytest.mark.parametrize("secrets", [[], [""]])
def test_without_a_configured_secret_nothing_is_accepted(secrets: list[str]) -> None:
    body = b"{}"
    error = refusal(body, {"x-hub-signature-256": sign(body, "")}, secrets)
    assert error.status == 401
    assert "github.webhook_secret" in error.hint
    assert "secrets.yml" in error.hint


def test_verification_does_not_parse_the_body() -> None:
    body = b"this is { not json"
    verify_github(body, {"x-hub-signature-256": sign(body)}, secrets=[SECRET])


# ---------------------------------------------------------------- parse_github: the samples

COMMON = {
    "repo_owner": "Codertocat", "repo_name": "Hello-World", "sender": "Codertocat",
    "sender_type": "User",
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kind", "delivery_id", "attrs"),
    [
        (
            "pull_request.opened",
            "pull_request.opened",
            "72d3162e-cc78-11e3-81ab-4c9367dc0959",
            {
                **COMMON,
                "number": 2,
                "title": "Update the README with new information.",
                "body": "This is a pretty simple change that we need to pull into master.",
                "head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
                "head_branch": "changes",
                "ref": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
                "base_branch": "master",
                "base_sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
                "labels": "",
                "draft": False,
                "author_association": "OWNER",
                "is_fork": False,
                "installation_id": 0,
                "base_repo": "Codertocat/Hello-World",
                "head_repo": "Codertocat/Hello-World",
            },
        ),
        (
            "push",
            "push",
            "72d3162e-cc78-11e3-81ab-4c9367dc095a",
            {
                **COMMON,
                "installation_id": 0,
                "ref": "refs/tags/simple-tag",
                "head_sha": "0000000000000000000000000000000000000000",
                "compare_url": "https://github.com/Codertocat/Hello-World/compare/"
                "6113728f27ae...000000000000",
                "commits": "",
            },
        ),
        (
            "issues.opened",
            "issues.opened",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            {
                **COMMON,
                "installation_id": 0,
                "number": 1,
                "title": "Spelling error in the README file",
                "body": "It looks like you accidently spelled 'commit' with two 't's.",
                "labels": "",
                "author_association": "OWNER",
            },
        ),
        (
            "issue_comment.created",
            "issue_comment.created",
            "72d3162e-cc78-11e3-81ab-4c9367dc095b",
            {
                **COMMON,
                "installation_id": 0,
                "number": 1,
                "title": "Spelling error in the README file",
                "comment": "You are totally right! I'll get this fixed right away.",
                "comment_author": "Codertocat",
                "labels": "bug",
                "author_association": "OWNER",
                "comment_id": 492700400,
                "is_pull_request": False,
            },
        ),
        (
            "ping",
            "ping",
            "72d3162e-cc78-11e3-81ab-4c9367dc095c",
            {
                "repo_owner": "Octocoders",
                "repo_name": "Hello-World",
                "sender": "Codertocat",
                "sender_type": "User",
                "installation_id": 0,
            },
        ),
    ],
)
def test_each_sample_parses(
    name: str, kind: str, delivery_id: str, attrs: dict[str, AttrValue]
) -> None:
    body, headers = load_sample("github", name)
    delivery = parse_github(body, headers)
    assert delivery.source == "github"
    assert delivery.type == kind
    assert delivery.delivery_id == delivery_id
    assert delivery.actor == "Codertocat"
    assert delivery.subject == f"{attrs['repo_owner']}/Hello-World"
    assert dict(delivery.attrs) == attrs
    assert delivery.raw == body


def test_stored_headers_keep_facts_and_drop_secrets() -> None:
    body, headers = load_sample("github", "pull_request.opened")
    sent = {
        **headers,
        "x-hub-signature-256": sign(body),
        "authorization": "Bearer t0ken",
        "cookie": "session=abc",
    }
    stored = parse_github(body, sent).headers
    assert stored["x-github-event"] == "pull_request"
    assert stored["x-github-hook-id"] == "292430182"
    assert stored["user-agent"] == "GitHub-Hookshot/044aadd"
    assert "authorization" not in stored
    assert "cookie" not in stored


# ---------------------------------------------------------------- parse_github: variations


def reparse(name: str, change: dict[str, Any], **header_changes: str) -> dict[str, AttrValue]:
    """Parse sample ``name`` with top-level payload keys replaced by ``change``."""
    body, headers = load_sample("github", name)
    payload = {**json.loads(body), **change}
    return dict(parse_github(json.dumps(payload).encode(), {**headers, **header_changes}).attrs)


def pull_request_with(**fields: Any) -> dict[str, Any]:
    body, _ = load_sample("github", "pull_request.opened")
    pr: dict[str, Any] = json.loads(body)["pull_request"]
    pr.update(fields)
    return pr


def test_a_pull_request_from_a_fork() -> None:
    pr = pull_request_with(
        draft=True,
        labels=[{"name": "bug"}, {"name": "help wanted"}],
        author_association="FIRST_TIME_CONTRIBUTOR",
    )
    pr["head"]["repo"]["full_name"] = "mallory/Hello-World"
    attrs = reparse("pull_request.opened", {"pull_request": pr, "installation": {"id": 42}})
    assert attrs["is_fork"] is True
    assert attrs["head_repo"] == "mallory/Hello-World"
    assert attrs["base_repo"] == "Codertocat/Hello-World"
    assert attrs["draft"] is True
    assert attrs["labels"] == "bug, help wanted"
    assert attrs["author_association"] == "FIRST_TIME_CONTRIBUTOR"
    assert attrs["installation_id"] == 42


def test_a_deleted_fork_still_counts_as_a_fork() -> None:
    pr = pull_request_with()
    pr["head"]["repo"] = None
    attrs = reparse("pull_request.opened", {"pull_request": pr})
    assert attrs["is_fork"] is True
    assert attrs["head_repo"] == ""


def test_null_text_becomes_empty() -> None:
    attrs = reparse("pull_request.opened", {"pull_request": pull_request_with(body=None)})
    assert attrs["body"] == ""
    assert attrs["title"] == "Update the README with new information."


def test_push_commits_are_short_sha_and_first_line() -> None:
    commits = [
        {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Fix a bug\n\nDetails."},
        {"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "message": "Add tests"},
    ]
    attrs = reparse("push", {"commits": commits, "after": commits[-1]["id"]})
    assert attrs["commits"] == "0d1a26e6 Fix a bug\n6113728f Add tests"
    assert attrs["head_sha"] == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def test_a_comment_on_a_pull_request_says_so() -> None:
    body, _ = load_sample("github", "issue_comment.created")
    issue = json.loads(body)["issue"]
    issue["pull_request"] = {"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
    assert reparse("issue_comment.created", {"issue": issue})["is_pull_request"] is True


def test_a_review_comment_carries_the_pull_request_context() -> None:
    body, headers = load_sample("github", "pull_request.opened")
    payload = json.loads(body)
    payload.update(action="created", comment={"body": "Nit: typo", "author_association": "NONE"})
    delivery = parse_github(
        json.dumps(payload).encode(), {**headers, "x-github-event": "pull_request_review_comment"}
    )
    assert delivery.type == "pull_request_review_comment.created"
    assert delivery.attrs["number"] == 2
    assert delivery.attrs["title"] == "Update the README with new information."
    assert delivery.attrs["comment"] == "Nit: typo"
    assert delivery.attrs["head_sha"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert delivery.attrs["base_sha"] == "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
    assert delivery.attrs["author_association"] == "NONE"


def test_a_review_carries_its_body_and_state() -> None:
    body, headers = load_sample("github", "pull_request.opened")
    payload = json.loads(body)
    payload.update(action="submitted", review={"body": None, "state": "approved"})
    delivery = parse_github(
        json.dumps(payload).encode(), {**headers, "x-github-event": "pull_request_review"}
    )
    assert delivery.type == "pull_request_review.submitted"
    assert delivery.attrs["comment"] == ""
    assert delivery.attrs["review_state"] == "approved"
    assert delivery.attrs["head_sha"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def test_an_action_that_is_not_text_is_refused_with_its_path() -> None:
    body, headers = load_sample("github", "pull_request.opened")
    payload = {**json.loads(body), "action": None}
    with pytest.raises(WebhookError) as refused:
        parse_github(json.dumps(payload).encode(), headers)
    assert refused.value.status == 400
    assert "$.action: expected a string, got null" in refused.value.message


def test_an_unknown_event_keeps_its_name_and_the_common_attributes() -> None:
    body = json.dumps(
        {
            "action": "created",
            "starred_at": "2019-05-15T15:20:40Z",
            "repository": {"full_name": "Codertocat/Hello-World"},
            "sender": {"login": "octocat"},
        }
    ).encode()
    delivery = parse_github(body, {"x-github-event": "star", "x-github-delivery": "d-1"})
    assert delivery.type == "star.created"
    assert dict(delivery.attrs) == {
        "repo_owner": "Codertocat",
        "repo_name": "Hello-World",
        "sender": "octocat",
        "sender_type": "",
        "installation_id": 0,
    }


# ---------------------------------------------------------------- parse_github: refusals


def parse_refusal(body: bytes, headers: dict[str, str]) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        parse_github(body, headers)
    return caught.value


@pytest.mark.parametrize("missing", ["x-github-event", "x-github-delivery"])
def test_a_missing_header_is_refused(missing: str) -> None:
    body, headers = load_sample("github", "ping")
    del headers[missing]
    error = parse_refusal(body, headers)
    assert error.status == 400
    assert error.message.lower() == f"missing {missing} header"


def test_malformed_json_says_why_and_where() -> None:
    _, headers = load_sample("github", "ping")
    error = parse_refusal(b'{"zen": "Design for failure.",\n  "hook_id": }', headers)
    assert error.status == 400
    assert error.message == (
        "the GitHub delivery body is not valid JSON: unexpected character, expected a JSON value"
        " at line 2 column 14 (char 44)"
    )


@pytest.mark.parametrize(
    ("body", "got"),
    [(b"[1, 2]", "an array"), (b'"text"', "a string"), (b"null", "null"), (b"3", "a number")],
)
def test_a_body_that_is_not_an_object_is_refused(body: bytes, got: str) -> None:
    _, headers = load_sample("github", "ping")
    error = parse_refusal(body, headers)
    assert error.status == 400
    assert error.message == f"the GitHub delivery body must be a JSON object ({{...}}), not {got}"


def test_a_body_that_is_not_utf8_is_refused() -> None:
    _, headers = load_sample("github", "ping")
    error = parse_refusal(b'{"zen": "caf\xe9"}', headers)
    assert error.status == 400
    assert error.message.startswith("the GitHub delivery body is not UTF-8 text")
    assert "byte 12" in error.message


def test_a_form_encoded_delivery_is_refused_with_the_fix() -> None:
    _, headers = load_sample("github", "ping")
    headers["content-type"] = "application/x-www-form-urlencoded"
    error = parse_refusal(b"payload=%7B%7D", headers)
    assert error.status == 400
    assert "application/json" in error.hint
