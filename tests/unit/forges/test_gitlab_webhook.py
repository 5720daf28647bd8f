"""GitLab webhooks: secret token and Standard Webhooks signature checks, and parsing, against
GitLab's published payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from mecha.errors import WebhookError
from mecha.event import AttrValue
from mecha.forges.gitlab.webhook import parse_gitlab, signing_key, verify_gitlab
from tests.sample_payloads import load_sample

TOKEN = "s3cret-token"
NEXT_TOKEN = "rotated-token"
# The Standard Webhooks reference test vector (libraries/python/tests/test_webhooks.py,
# test_sign_function): this secret, id, timestamp and body give this signature.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIME = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# A token in the form GitLab hands out: whsec_ + base64 of 32 random bytes.
SIGNING = "whsec_" + base64.b64encode(bytes(range(32))).decode()
NEXT_SIGNING = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
NOW = 1_700_000_000.0


def standard_headers(
    body: bytes, token: str = SIGNING, *, stamp: int = int(NOW), message_id: str = "msg-1"
) -> dict[str, str]:
    """The webhook-* headers GitLab sends for ``body`` with signing token ``token``."""
    key = base64.b64decode(token.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def verify(
    body: bytes,
    headers: dict[str, str],
    *,
    tokens: tuple[str, ...] = (),
    signing: tuple[str, ...] = (),
    now: float = NOW,
) -> None:
    verify_gitlab(body, headers, tokens=tokens, signing_tokens=signing, now=now)


def refusal(body: bytes, headers: dict[str, str], **options: Any) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        verify(body, headers, **options)
    assert caught.value.status == 401
    return caught.value


# ---------------------------------------------------------------- X-Gitlab-Token


def test_the_secret_token_is_accepted() -> None:
    body, headers = load_sample("gitlab", "push")
    verify(body, {**headers, "x-gitlab-token": TOKEN}, tokens=(TOKEN,))


def test_the_second_token_is_accepted_during_rotation() -> None:
    body, headers = load_sample("gitlab", "push")
    verify(body, {**headers, "x-gitlab-token": NEXT_TOKEN}, tokens=(TOKEN, NEXT_TOKEN))


def test_a_wrong_token_is_refused_without_showing_it() -> None:
    body, headers = load_sample("gitlab", "push")
    error = refusal(body, {**headers, "x-gitlab-token": "guess"}, tokens=(TOKEN,))
    assert error.message == "X-Gitlab-Token does not match any configured GitLab webhook secret"
    assert TOKEN not in str(error)
    assert "guess" not in str(error)


def test_a_missing_token_is_refused() -> None:
    body, headers = load_sample("gitlab", "push")
    assert refusal(body, headers, tokens=(TOKEN,)).message == "missing X-Gitlab-Token header"


@pytest.mark.parametrize(("tokens", "signing"), [((), ()), (("",), ("",))])
def test_with_nothing_configured_nothing_is_accepted(
    tokens: tuple[str, ...], signing: tuple[str, ...]
) -> None:
    body, headers = load_sample("gitlab", "push")
    error = refusal(body, {**headers, "x-gitlab-token": ""}, tokens=tokens, signing=signing)
    assert "gitlab.webhook_secret" in error.hint
    assert "gitlab.signing_token" in error.hint


# ---------------------------------------------------------------- Standard Webhooks signature


def test_the_standard_webhooks_reference_vector_verifies() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIME),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    verify(VECTOR_BODY, headers, signing=(VECTOR_SECRET,), now=VECTOR_TIME + 10)


def test_a_signed_sample_verifies() -> None:
    body, headers = load_sample("gitlab", "merge_request.open")
    verify(body, {**headers, **standard_headers(body)}, signing=(SIGNING,))


def test_the_second_signing_token_is_accepted_during_rotation() -> None:
    body, headers = load_sample("gitlab", "merge_request.open")
    signed = {**headers, **standard_headers(body, NEXT_SIGNING)}
    verify(body, signed, signing=(SIGNING, NEXT_SIGNING))
    refusal(body, signed, signing=(SIGNING,))


def test_any_signature_in_the_list_may_match() -> None:
    body, headers = load_sample("gitlab", "push")
    signed = standard_headers(body)
    other = standard_headers(body, NEXT_SIGNING)["webhook-signature"]
    signed["webhook-signature"] = f"v1a,c29tZXRoaW5n {other} {signed['webhook-signature']}"
    verify(body, {**headers, **signed}, signing=(SIGNING,))


def test_a_signing_token_without_the_whsec_prefix_is_decoded_as_base64() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIME),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    bare = VECTOR_SECRET.removeprefix("whsec_")
    verify(VECTOR_BODY, headers, signing=(bare,), now=VECTOR_TIME)


def test_a_wrong_signature_is_refused_even_with_a_good_token() -> None:
    body, headers = load_sample("gitlab", "push")
    signed = {**headers, **standard_headers(body, NEXT_SIGNING), "x-gitlab-token": TOKEN}
    error = refusal(body, signed, tokens=(TOKEN,), signing=(SIGNING,))
    assert error.message == "webhook-signature does not match any configured GitLab signing token"
    assert SIGNING not in str(error)


def test_a_changed_body_is_refused() -> None:
    body, headers = load_sample("gitlab", "push")
    signed = {**headers, **standard_headers(body)}
    error = refusal(body.replace(b"jsmith", b"jsmith2"), signed, signing=(SIGNING,))
    assert "does not match" in error.message


def test_the_signature_covers_the_id() -> None:
    body, headers = load_sample("gitlab", "push")
    signed = {**headers, **standard_headers(body), "webhook-id": "msg-2"}
    refusal(body, signed, signing=(SIGNING,))


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_timestamp_within_five_minutes_is_accepted(offset: int) -> None:
    body, headers = load_sample("gitlab", "push")
    signed = {**headers, **standard_headers(body, stamp=int(NOW) + offset)}
    verify(body, signed, signing=(SIGNING,))


def test_an_expired_timestamp_is_refused() -> None:
    body, headers = load_sample("gitlab", "push")
    signed = {**headers, **standard_headers(body, stamp=int(NOW) - 301)}
    error = refusal(body, signed, signing=(SIGNING,))
    assert error.message.startswith("webhook-timestamp is too old: 301 s behind")


def test_a_timestamp_from_the_future_is_refused() -> None:
    body, headers = load_sample("gitlab", "push")
    signed = {**headers, **standard_headers(body, stamp=int(NOW) + 301)}
    error = refusal(body, signed, signing=(SIGNING,))
    assert error.message.startswith("webhook-timestamp is too new: 301 s ahead of")


@pytest.mark.parametrize("stamp", ["", "soon", "-5", "1.7e9", "１２３"])
def test_a_timestamp_that_is_not_whole_seconds_is_refused(stamp: str) -> None:
    body = b"{}"
    signed = {**standard_headers(body), "webhook-timestamp": stamp}
    error = refusal(body, signed, signing=(SIGNING,))
    assert "webhook-timestamp" in error.message


@pytest.mark.parametrize(
    "value",
    ["", "v1", "v1,", "v1,not base64!", "v2,AAAA", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="],
)
def test_a_malformed_signature_is_refused(value: str) -> None:
    body = b"{}"
    signed = {**standard_headers(body), "webhook-signature": value}
    error = refusal(body, signed, tokens=(TOKEN,), signing=(SIGNING,))
    assert error.message == "webhook-signature has no v1,<base64> signature"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp"])
def test_a_signature_without_its_id_or_timestamp_is_refused(missing: str) -> None:
    body = b"{}"
    signed = standard_headers(body)
    del signed[missing]
    error = refusal(body, signed, signing=(SIGNING,))
    assert error.message == f"missing {missing} header, which webhook-signature needs"


def test_without_a_signature_the_token_still_works_when_both_are_configured() -> None:
    body, headers = load_sample("gitlab", "push")
    verify(body, {**headers, "x-gitlab-token": TOKEN}, tokens=(TOKEN,), signing=(SIGNING,))


def test_with_only_a_signing_token_a_missing_signature_is_refused() -> None:
    body, headers = load_sample("gitlab", "push")
    error = refusal(body, {**headers, "x-gitlab-token": TOKEN}, signing=(SIGNING,))
    assert error.message == "missing webhook-signature header"


def test_with_both_configured_and_neither_sent_both_are_named() -> None:
    body, headers = load_sample("gitlab", "push")
    error = refusal(body, headers, tokens=(TOKEN,), signing=(SIGNING,))
    assert error.message == "missing webhook-signature or X-Gitlab-Token header"


def test_signing_key_decodes_what_gitlab_shows_and_explains_what_it_cannot() -> None:
    assert signing_key(SIGNING) == bytes(range(32))
    for bad, reason in [("plain-secret", "starts with whsec_"), ("whsec_!!!", "not base64")]:
        with pytest.raises(ValueError, match=reason) as caught:
            signing_key(bad)
        assert bad.removeprefix("whsec_") not in str(caught.value)
    with pytest.raises(ValueError, match="no key"):
        signing_key("whsec_")


def test_a_whsec_token_that_is_not_base64_never_matches() -> None:
    body = b"{}"
    headers = standard_headers(body)
    error = refusal(body, headers, signing=("whsec_!!!not-base64",))
    assert "whsec_" in error.hint


# ---------------------------------------------------------------- parse_gitlab: the samples


@pytest.mark.parametrize(
    ("name", "kind", "delivery_id", "who", "attrs"),
    [
        (
            "merge_request.open",
            "merge_request.open",
            "1f0a54f0-0529-408d-a5b8-a2a98ff5f94a",
            ("root", "gitlabhq/gitlab-test"),  # actor, subject
            {
                "repo_owner": "gitlabhq",
                "repo_name": "gitlab-test",
                "sender": "root",
                "project_id": 1,
                "number": 1,
                "title": "MS-Viewport",
                "body": "",
                "head_branch": "ms-viewport",
                "base_branch": "master",
                "ref": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
                "head_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
                "base_sha": "",
                "labels": "API",
                "draft": False,
                "is_fork": False,
                "base_repo": "awesome_space/awesome_project",
                "head_repo": "awesome_space/awesome_project",
                "state": "opened",
            },
        ),
        (
            "push",
            "push",
            "a5461c4d-9c7f-4af9-add6-cddebe3c426f",
            ("jsmith", "mike/diaspora"),  # actor, subject
            {
                "repo_owner": "mike",
                "repo_name": "diaspora",
                "sender": "jsmith",
                "project_id": 15,
                "ref": "refs/heads/master",
                "head_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
                "commits": "b6568db1 Update Catalan translation to e38cb41.\nda156088 fixed readme",
            },
        ),
        (
            "issue.open",
            "issue.open",
            "a5461c4d-9c7f-4af9-add6-cddebe3c4271",
            ("root", "gitlabhq/gitlab-test"),  # actor, subject
            {
                "repo_owner": "gitlabhq",
                "repo_name": "gitlab-test",
                "sender": "root",
                "project_id": 1,
                "number": 23,
                "title": "New API: create/update/delete file",
                "body": "Create new API for manipulations with repository",
                "labels": "API",
                "state": "opened",
                "confidential": False,
            },
        ),
    ],
)
def test_each_sample_parses(
    name: str, kind: str, delivery_id: str, who: tuple[str, str], attrs: dict[str, AttrValue]
) -> None:
    body, headers = load_sample("gitlab", name)
    delivery = parse_gitlab(body, headers)
    assert delivery.source == "gitlab"
    assert delivery.type == kind
    assert delivery.delivery_id == delivery_id
    assert (delivery.actor, delivery.subject) == who
    assert dict(delivery.attrs) == attrs
    assert delivery.raw == body


def test_the_merge_request_comment_sample_parses() -> None:
    body, headers = load_sample("gitlab", "note")
    delivery = parse_gitlab(body, headers)
    assert delivery.type == "note"
    assert delivery.actor == "root"
    assert delivery.subject == "gitlab-org/gitlab-test"
    attrs = delivery.attrs
    assert attrs["comment"] == "This MR needs work."
    assert attrs["noteable_type"] == "MergeRequest"
    assert attrs["action"] == "create"
    assert attrs["number"] == 1
    assert attrs["title"] == "Tempora et eos debitis quae laborum et."
    assert attrs["head_sha"] == "562e173be03b8ff2efb05345d12df18815438a4b"
    assert attrs["head_branch"] == "master"
    assert attrs["base_branch"] == "markdown"
    assert attrs["labels"] == "Afterpod, Element"
    assert attrs["project_id"] == 5
    assert attrs["is_fork"] is False


def test_stored_headers_keep_facts_and_drop_the_token() -> None:
    body, headers = load_sample("gitlab", "push")
    stored = parse_gitlab(body, {**headers, "x-gitlab-token": TOKEN}).headers
    assert "x-gitlab-token" not in stored
    assert stored["x-gitlab-event"] == "Push Hook"
    assert stored["x-gitlab-instance"] == "https://gitlab.example.com"


# ---------------------------------------------------------------- parse_gitlab: variations


def parse_changed(name: str, payload_change: dict[str, Any], **headers: str) -> Any:
    body, sent = load_sample("gitlab", name)
    payload = {**json.loads(body), **payload_change}
    return parse_gitlab(json.dumps(payload).encode(), {**sent, **headers})


def merge_request_with(**fields: Any) -> dict[str, Any]:
    body, _ = load_sample("gitlab", "merge_request.open")
    mr: dict[str, Any] = json.loads(body)["object_attributes"]
    mr.update(fields)
    return mr


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("Tag Push Hook", "tag_push"),
        ("Confidential Issue Hook", "issue.open"),
        ("Confidential Note Hook", "note"),
        ("Pipeline Hook", "pipeline_hook"),
        ("Wiki Page Hook", "wiki_page_hook"),
    ],
)
def test_event_names_are_normalised(event: str, kind: str) -> None:
    sample = "push" if "Push" in event or "Pipeline" in event or "Wiki" in event else "issue.open"
    assert parse_changed(sample, {}, **{"x-gitlab-event": event}).type == kind


def test_a_merge_request_event_without_an_action_is_just_merge_request() -> None:
    mr = merge_request_with()
    del mr["action"]
    assert parse_changed("merge_request.open", {"object_attributes": mr}).type == "merge_request"


def test_a_draft_fork_merge_request_with_diff_refs() -> None:
    mr = merge_request_with(
        draft=False,
        work_in_progress=True,
        source_project_id=99,
        diff_refs={"base_sha": "95790bf891e76fee5e1747ab589903a6a1f80f22", "head_sha": "x"},
    )
    mr["source"]["path_with_namespace"] = "mallory/awesome_project"
    attrs = parse_changed("merge_request.open", {"object_attributes": mr}).attrs
    assert attrs["draft"] is True
    assert attrs["is_fork"] is True
    assert attrs["head_repo"] == "mallory/awesome_project"
    assert attrs["base_repo"] == "awesome_space/awesome_project"
    assert attrs["base_sha"] == "95790bf891e76fee5e1747ab589903a6a1f80f22"


def test_nested_groups_split_at_the_last_slash() -> None:
    body, _ = load_sample("gitlab", "push")
    project = json.loads(body)["project"]
    project["path_with_namespace"] = "acme/platform/infra/deployer"
    delivery = parse_changed("push", {"project": project})
    assert delivery.subject == "acme/platform/infra/deployer"
    assert delivery.attrs["repo_owner"] == "acme/platform/infra"
    assert delivery.attrs["repo_name"] == "deployer"


def test_a_comment_on_an_issue() -> None:
    body, _ = load_sample("gitlab", "note")
    payload = json.loads(body)
    note = {**payload["object_attributes"], "noteable_type": "Issue", "note": "Hello world"}
    issue = {"iid": 17, "title": "test", "labels": [{"title": "Afterpod"}]}
    delivery = parse_changed(
        "note", {"object_attributes": note, "issue": issue, "merge_request": None}
    )
    assert delivery.type == "note"
    assert delivery.attrs["noteable_type"] == "Issue"
    assert delivery.attrs["number"] == 17
    assert delivery.attrs["title"] == "test"
    assert delivery.attrs["labels"] == "Afterpod"
    assert delivery.attrs["comment"] == "Hello world"
    assert "head_sha" not in delivery.attrs


def test_the_actor_falls_back_to_user_username() -> None:
    body, sent = load_sample("gitlab", "push")
    payload = {**json.loads(body), "user": {"username": "mike"}}
    del payload["user_username"]
    delivery = parse_gitlab(json.dumps(payload).encode(), sent)
    assert delivery.actor == "mike"
    assert delivery.attrs["sender"] == "mike"


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        ({"idempotency-key", "x-gitlab-event-uuid"}, "a5461c4d-9c7f-4af9-add6-cddebe3c426f"),
        ({"x-gitlab-event-uuid", "x-gitlab-webhook-uuid"}, "9cebe914-4827-408f-b014-cfa23a47a35f"),
        ({"x-gitlab-webhook-uuid", "x-gitlab-instance"}, "3c5c0404-c866-44bc-a5f6-452bb1bfc76e"),
        ({"x-gitlab-instance", "x-request-id"}, "https://gitlab.example.com/req-7"),
    ],
)
def test_the_delivery_id_falls_back_in_order(keep: set[str], expected: str) -> None:
    body, headers = load_sample("gitlab", "push")
    headers["x-request-id"] = "req-7"
    ids = {
        "idempotency-key",
        "x-gitlab-event-uuid",
        "x-gitlab-webhook-uuid",
        "x-gitlab-instance",
        "x-request-id",
    }
    sent = {name: value for name, value in headers.items() if name not in ids or name in keep}
    assert parse_gitlab(body, sent).delivery_id == expected


# ---------------------------------------------------------------- parse_gitlab: refusals


def parse_refusal(body: bytes, headers: dict[str, str]) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        parse_gitlab(body, headers)
    assert caught.value.status == 400
    return caught.value


def test_a_delivery_without_any_id_is_refused() -> None:
    body, headers = load_sample("gitlab", "push")
    for name in ("idempotency-key", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid"):
        del headers[name]
    error = parse_refusal(body, headers)
    assert error.message.startswith("the GitLab delivery has no id")


def test_a_missing_event_header_is_refused() -> None:
    body, headers = load_sample("gitlab", "push")
    del headers["x-gitlab-event"]
    assert parse_refusal(body, headers).message == "missing X-Gitlab-Event header"


def test_malformed_json_says_why_and_where() -> None:
    _, headers = load_sample("gitlab", "push")
    error = parse_refusal(b'{"object_kind": push}', headers)
    assert error.message == (
        "the GitLab delivery body is not valid JSON: unexpected character, expected a JSON value"
        " at line 1 column 17 (char 16)"
    )


def test_json_with_nan_is_refused() -> None:
    _, headers = load_sample("gitlab", "push")
    error = parse_refusal(b'{"total_commits_count": NaN}', headers)
    assert error.message == (
        "the GitLab delivery body is not valid JSON: unexpected character, expected a JSON value "
        "at line 1 column 25 (char 24)"
    )


def test_a_body_that_is_not_an_object_is_refused() -> None:
    _, headers = load_sample("gitlab", "push")
    error = parse_refusal(b'[{"object_kind": "push"}]', headers)
    assert error.message == "the GitLab delivery body must be a JSON object ({...}), not an array"


# ---------------------------------------------------------------- as upstream read them


def without_noteable_type(name: str) -> dict[str, Any]:
    body, _ = load_sample("gitlab", name)
    payload: dict[str, Any] = json.loads(body)
    del payload["object_attributes"]["noteable_type"]
    return payload


def test_a_note_without_noteable_type_reads_the_merge_request_it_carries() -> None:
    body, headers = load_sample("gitlab", "note")
    delivery = parse_gitlab(json.dumps(without_noteable_type("note")).encode(), headers)
    sent = parse_gitlab(body, headers).attrs
    assert dict(delivery.attrs) == dict(sent)  # the same attributes, noteable_type included
    assert delivery.attrs["noteable_type"] == "MergeRequest"
    assert delivery.attrs["number"] == 1


def test_a_note_without_noteable_type_reads_the_issue_it_carries() -> None:
    _, headers = load_sample("gitlab", "note")
    payload = without_noteable_type("note")
    del payload["merge_request"]
    payload["issue"] = {"iid": 4, "title": "It breaks", "labels": [{"title": "bug"}]}
    attrs = parse_gitlab(json.dumps(payload).encode(), headers).attrs
    assert (attrs["noteable_type"], attrs["number"], attrs["title"]) == ("Issue", 4, "It breaks")
    assert attrs["labels"] == "bug"


def test_an_issue_hook_without_object_attributes_has_no_number() -> None:
    body, headers = load_sample("gitlab", "issue.open")
    payload = json.loads(body)
    del payload["object_attributes"]
    attrs = parse_gitlab(json.dumps(payload).encode(), headers).attrs
    for absent in ("number", "title", "body", "state"):
        assert absent not in attrs
    assert attrs["repo_name"] == "gitlab-test"


def test_an_issue_or_merge_request_without_an_iid_has_no_number() -> None:
    body, headers = load_sample("gitlab", "issue.open")
    payload = json.loads(body)
    del payload["object_attributes"]["iid"]
    assert "number" not in parse_gitlab(json.dumps(payload).encode(), headers).attrs
    changed = parse_changed("merge_request.open", {"object_attributes": merge_request_with()})
    assert changed.attrs["number"] > 0
    mr = merge_request_with()
    del mr["iid"]
    assert "number" not in parse_changed("merge_request.open", {"object_attributes": mr}).attrs
