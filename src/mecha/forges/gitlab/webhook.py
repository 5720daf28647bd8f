"""GitLab webhooks, sans-I/O: check the secret token or signature, then build a ``Delivery``.

Wire format, from GitLab's documentation ("Webhooks" → Delivery headers, "Webhook events"):

* ``X-Gitlab-Event``: ``Push Hook``, ``Merge Request Hook``, ``Note Hook``, ``Issue Hook`` ...
* ``Idempotency-Key`` (GitLab 17.4+): the same across retries of one delivery;
  ``X-Gitlab-Event-UUID`` (14.8+): one per event; ``X-Gitlab-Webhook-UUID`` (16.2+): one per
  request (a retry gets a new one); ``X-Gitlab-Instance``: the instance's URL.
* Authentication is either ``X-Gitlab-Token`` (the webhook's "Secret token", sent in plain
  text) or, with a "Signing token", a Standard Webhooks signature: ``webhook-id``,
  ``webhook-timestamp`` (unix seconds) and ``webhook-signature: v1,<base64>`` (space-separated
  list), the HMAC-SHA256 of ``"{webhook-id}.{webhook-timestamp}." + body``
  (gitlab-org/gitlab!230944; the Standard Webhooks specification, "Signature scheme").

How the signing token becomes the HMAC key: GitLab only takes signing tokens of the form
``whsec_<base64 of a 32-byte key>`` (gitlab-org/gitlab!231325), which is the Standard Webhooks
secret serialisation ("base64 encoded, prefixed with ``whsec_``", spec §Signature scheme), and
the key is the base64-decoded part after the prefix (as in the reference library
``standardwebhooks.Webhook``). So ``gitlab.signing_token`` holds exactly what GitLab shows,
``whsec_...``. A token without the prefix is tried both base64-decoded (what the Standard
Webhooks libraries do with one) and as its raw UTF-8 bytes; a ``whsec_`` token whose rest is
not base64 can never match (``signing_key`` says why, for configuration checks).

Normalisation follows upstream (functional spec §8.2) except where noted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from mecha.errors import WebhookError
from mecha.event import AttrValue, Delivery, checked_delivery_id, stored_headers
from mecha.forges import payload_shape
from mecha.forges.payload import (
    bool_at,
    commit_lines,
    int_at,
    joined_names,
    load_json_object,
    object_at,
    required_header,
    text_at,
)

SOURCE = "gitlab"
#: how far ``webhook-timestamp`` may be from the server's clock, either way (seconds)
TIMESTAMP_TOLERANCE = 5 * 60
WHSEC_PREFIX = "whsec_"
#: the request headers kept with a GitLab event (besides content-type and user-agent); never
#: X-Gitlab-Token, which is the secret itself
STORED_HEADERS = (
    "x-gitlab-event",
    "idempotency-key",
    "x-gitlab-event-uuid",
    "x-gitlab-webhook-uuid",
    "x-gitlab-instance",
    "x-request-id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)
#: the longest X-Gitlab-Instance accepted as part of a delivery id (characters)
MAX_INSTANCE = 256

Attrs = dict[str, AttrValue]

_SECRETS_HINT = (
    "set gitlab.webhook_secret (the webhook's Secret token) or gitlab.signing_token (its "
    "Signing token, whsec_...) in secrets.yml to the value configured on GitLab"
)


def verify_gitlab(
    body: bytes,
    headers: Mapping[str, str],
    *,
    tokens: Sequence[str],
    signing_tokens: Sequence[str],
    now: float,
) -> None:
    """Refuse (``WebhookError`` 401) a delivery that proves neither a secret token nor a signature.

    Accepted: a valid ``webhook-signature`` for one of ``signing_tokens`` with a
    ``webhook-timestamp`` within five minutes of ``now`` (unix seconds), or an
    ``X-Gitlab-Token`` equal to one of ``tokens``. When signing tokens are configured and the
    delivery carries a signature, the signature decides: a wrong one is refused even if the
    token would match. With nothing configured every delivery is refused.
    """
    configured_tokens = [token for token in tokens if token]
    configured_signing = [token for token in signing_tokens if token]
    if not configured_tokens and not configured_signing:
        raise WebhookError(
            401,
            "no GitLab secret token or signing token is configured, so the delivery cannot be "
            "verified",
            hint=_SECRETS_HINT,
        )
    signature = headers.get("webhook-signature")
    if configured_signing and signature is not None:
        _check_signature(body, headers, signature, configured_signing, now)
        return
    if configured_tokens and "x-gitlab-token" in headers:
        _check_token(headers["x-gitlab-token"], configured_tokens)
        return
    expected = " or ".join(
        name
        for name, wanted in (
            ("webhook-signature", configured_signing),
            ("X-Gitlab-Token", configured_tokens),
        )
        if wanted
    )
    raise WebhookError(401, f"missing {expected} header", hint=_SECRETS_HINT)


def _check_token(presented: str, tokens: Sequence[str]) -> None:
    value = presented.encode()
    if not any(hmac.compare_digest(value, token.encode()) for token in tokens):
        raise WebhookError(
            401,
            "X-Gitlab-Token does not match any configured GitLab webhook secret",
            hint="the webhook's Secret token on GitLab must equal gitlab.webhook_secret in "
            "secrets.yml",
        )


def _check_signature(
    body: bytes,
    headers: Mapping[str, str],
    signature: str,
    signing_tokens: Sequence[str],
    now: float,
) -> None:
    message_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    for name, value in (("webhook-id", message_id), ("webhook-timestamp", stamp)):
        if not value:
            raise WebhookError(
                401,
                f"missing {name} header, which webhook-signature needs",
                hint="GitLab sends webhook-id, webhook-timestamp and webhook-signature together",
            )
    _check_timestamp(stamp, now)
    presented = _signatures(signature)
    signed = f"{message_id}.{stamp}.".encode() + body
    matched = False
    for token in signing_tokens:
        for key in _candidate_keys(token):
            expected = hmac.new(key, signed, hashlib.sha256).digest()
            for candidate in presented:
                matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookError(
            401,
            "webhook-signature does not match any configured GitLab signing token",
            hint="gitlab.signing_token in secrets.yml must be the whsec_... Signing token shown "
            "by GitLab, and the body must arrive unchanged",
        )


def _check_timestamp(stamp: str, now: float) -> None:
    if not (stamp.isascii() and stamp.isdigit()):
        raise WebhookError(
            401,
            "webhook-timestamp is not a whole number of seconds since 1970",
            hint="GitLab sends unix seconds, e.g. webhook-timestamp: 1700000000",
        )
    skew = int(stamp) - now
    if abs(skew) <= TIMESTAMP_TOLERANCE:
        return
    which = "too old" if skew < 0 else "too new"
    where = "behind" if skew < 0 else "ahead of"
    raise WebhookError(
        401,
        f"webhook-timestamp is {which}: {abs(skew):.0f} s {where} this server's clock "
        f"(at most {TIMESTAMP_TOLERANCE} s are allowed)",
        hint="a replayed or long-delayed delivery is refused; if it is genuine, check that "
        "both clocks are right (NTP)",
    )


def _signatures(header: str) -> list[bytes]:
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # v1a (asymmetric) and future versions: not ours to check
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if decoded:
            found.append(decoded)
    if not found:
        raise WebhookError(
            401,
            "webhook-signature has no v1,<base64> signature",
            hint="expected webhook-signature: v1,<base64 HMAC-SHA256> (space-separated list)",
        )
    return found


def signing_key(token: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` signing token; ``ValueError`` (without the token
    in it) if the token is not of that form."""
    if not token.startswith(WHSEC_PREFIX):
        raise ValueError("a GitLab signing token starts with whsec_")
    encoded = token[len(WHSEC_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("the part of the signing token after whsec_ is not base64") from None
    if not key:
        raise ValueError("the signing token holds no key after whsec_")
    return key


def _candidate_keys(token: str) -> list[bytes]:
    if token.startswith(WHSEC_PREFIX):
        try:
            return [signing_key(token)]
        except ValueError:
            return []
    keys = [token.encode()]
    with contextlib.suppress(ValueError):
        keys.append(signing_key(WHSEC_PREFIX + token))
    return keys


# ---------------------------------------------------------------- parsing

EVENT_KINDS = {
    "Merge Request Hook": "merge_request",
    "Push Hook": "push",
    "Tag Push Hook": "tag_push",
    "Note Hook": "note",
    "Confidential Note Hook": "note",
    "Issue Hook": "issue",
    "Confidential Issue Hook": "issue",
}
#: kinds whose type carries ``object_attributes.action`` (merge_request.open, issue.close ...)
_WITH_ACTION = frozenset({"merge_request", "issue"})


def parse_gitlab(body: bytes, headers: Mapping[str, str]) -> Delivery:
    """Turn a verified GitLab delivery into a ``Delivery`` (``WebhookError`` 400 if it cannot
    be read: no event header or delivery id, not a JSON object, a wrong ``payload_shape``)."""
    event = required_header(
        headers, "X-Gitlab-Event", hint="GitLab sends it with every delivery; is this GitLab?"
    )
    delivery_id = _delivery_id(headers)
    payload = load_json_object(body, what="GitLab delivery body")
    kind = EVENT_KINDS.get(event)
    attrs = _common_attrs(payload)
    if kind is None:
        kind_type = event.lower().replace(" ", "_")  # upstream: lowercased, spaces → _
    else:
        shape = payload_shape.gitlab_shape(kind, payload)
        payload_shape.check_shape(payload, shape, forge="GitLab", event=event)
        action = text_at(payload, "object_attributes", "action") if kind in _WITH_ACTION else ""
        kind_type = f"{kind}.{action}" if action else kind
        attrs.update(_EXTRACTORS[kind](payload))
    return Delivery(
        source=SOURCE,
        type=kind_type,
        delivery_id=delivery_id,
        actor=_actor(payload),
        subject=text_at(payload, "project", "path_with_namespace"),
        attrs=attrs,
        raw=body,
        headers=stored_headers(headers, STORED_HEADERS),
    )


def _delivery_id(headers: Mapping[str, str]) -> str:
    for name in ("Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"):
        value = headers.get(name.lower(), "").strip()
        if value:
            return checked_delivery_id(value, name)
    instance = headers.get("x-gitlab-instance", "").strip()
    request = headers.get("x-request-id", "").strip()
    if instance and request:
        if len(instance) > MAX_INSTANCE or not instance.isprintable() or not instance.isascii():
            raise WebhookError(
                400,
                f"the X-Gitlab-Instance header is not a URL of at most {MAX_INSTANCE} "
                "characters, so it cannot be part of the delivery id",
                hint="GitLab sends the instance's URL; check that no proxy rewrites it",
            )
        return f"{instance}/{checked_delivery_id(request, 'X-Request-Id')}"
    raise WebhookError(
        400,
        "the GitLab delivery has no id: none of Idempotency-Key, X-Gitlab-Event-UUID, "
        "X-Gitlab-Webhook-UUID, or X-Gitlab-Instance with X-Request-Id is present",
        hint="GitLab 14.8 and later send X-Gitlab-Event-UUID; check that no proxy strips the "
        "X-Gitlab-* headers",
    )


def _actor(payload: dict[str, Any]) -> str:
    return text_at(payload, "user_username") or text_at(payload, "user", "username")


def _common_attrs(payload: dict[str, Any]) -> Attrs:
    path = text_at(payload, "project", "path_with_namespace")
    # Groups nest (group/subgroup/project), so the project name is what follows the LAST
    # slash. Upstream split at the first one, which gave "group" / "subgroup/project".
    owner, _, name = path.rpartition("/")
    return {
        "repo_owner": owner,
        "repo_name": name,
        "sender": _actor(payload),
        "project_id": int_at(payload, "project", "id") or int_at(payload, "project_id"),
    }


def _number(item: dict[str, Any]) -> Attrs:
    """``{"number": iid}`` if the merge request or issue has an ``iid``, else nothing: an
    absent number stays absent, so ``{{.number}}`` fails loudly instead of naming 0."""
    iid = item.get("iid")
    return {"number": iid} if isinstance(iid, int) and not isinstance(iid, bool) else {}


def _merge_request_attrs(mr: dict[str, Any]) -> Attrs:
    """What a merge request object (``object_attributes`` of an MR event, ``merge_request``
    of a note) says."""
    head_sha = text_at(mr, "last_commit", "id")
    return {
        **_number(mr),
        "title": text_at(mr, "title"),
        "body": text_at(mr, "description"),
        "head_branch": text_at(mr, "source_branch"),
        "base_branch": text_at(mr, "target_branch"),
        "ref": head_sha,
        "head_sha": head_sha,
        "base_sha": text_at(mr, "diff_refs", "base_sha"),
        "labels": joined_names(mr.get("labels"), "title"),
        "draft": bool_at(mr, "draft") or bool_at(mr, "work_in_progress"),
        "is_fork": int_at(mr, "source_project_id") != int_at(mr, "target_project_id"),
        "base_repo": text_at(mr, "target", "path_with_namespace"),
        "head_repo": text_at(mr, "source", "path_with_namespace"),
    }


def _merge_request(payload: dict[str, Any]) -> Attrs:
    mr = object_at(payload, "object_attributes")
    attrs = _merge_request_attrs(mr)
    attrs["state"] = text_at(mr, "state")
    if not attrs["labels"]:
        attrs["labels"] = joined_names(payload.get("labels"), "title")
    return attrs


def _push(payload: dict[str, Any]) -> Attrs:
    return {
        "ref": text_at(payload, "ref"),
        "head_sha": text_at(payload, "after"),
        "commits": commit_lines(payload.get("commits")),
    }


def _issue(payload: dict[str, Any]) -> Attrs:
    labels = joined_names(payload.get("labels"), "title")
    if not isinstance(issue := payload.get("object_attributes"), dict):
        # absent means absent (as upstream): {{.number}} fails loudly, not "issue 0"
        return {"labels": labels} if labels else {}
    return {
        **_number(issue),
        "title": text_at(issue, "title"),
        "body": text_at(issue, "description"),
        "labels": joined_names(issue.get("labels"), "title") or labels,
        "state": text_at(issue, "state"),
        "confidential": bool_at(issue, "confidential"),
    }


def _note(payload: dict[str, Any]) -> Attrs:
    note = object_at(payload, "object_attributes")
    noteable = payload_shape.noteable_of(payload)  # as sent, else from the object present
    attrs: Attrs = {}
    if noteable == "MergeRequest":
        attrs = _merge_request_attrs(object_at(payload, "merge_request"))
    elif noteable == "Issue":
        issue = object_at(payload, "issue")
        attrs = {
            **_number(issue),
            "title": text_at(issue, "title"),
            "labels": joined_names(issue.get("labels"), "title"),
        }
    elif noteable == "Commit":
        attrs = {"head_sha": text_at(payload, "commit", "id")}
    attrs["comment"] = text_at(note, "note")
    attrs["comment_id"] = int_at(note, "id")
    attrs["comment_author"] = text_at(payload, "user", "username")
    # whose access level trust asks GitLab's members API for
    attrs["comment_author_id"] = int_at(note, "author_id") or int_at(payload, "user", "id")
    attrs["noteable_type"] = noteable
    attrs["action"] = text_at(note, "action")
    return attrs


_EXTRACTORS = {
    "merge_request": _merge_request,
    "push": _push,
    "tag_push": _push,
    "note": _note,
    "issue": _issue,
}
