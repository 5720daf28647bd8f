"""GitHub webhooks, sans-I/O: check ``X-Hub-Signature-256``, then build a ``Delivery``.

Wire format, from GitHub's documentation ("Webhook events and payloads" → Delivery headers,
and "Validating webhook deliveries"):

* ``X-GitHub-Event``: the event name (``pull_request``, ``push``, ``ping`` ...);
* ``X-GitHub-Delivery``: a GUID per event, reused when a delivery is redelivered, so it is the
  deduplication key;
* ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>``;
  ``X-Hub-Signature`` (SHA-1) exists only for old integrations and is never accepted here.

Normalisation follows upstream (functional spec §8.1): type = event + "." + the payload's
``action`` when it has one (``pull_request.opened``; ``push`` and ``ping`` have none),
actor = ``sender.login``, subject = ``repository.full_name``. Attributes are JSON values:
text (``null`` becomes ""), integers and booleans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mecha.errors import WebhookError
from mecha.event import AttrValue, Delivery, checked_delivery_id, stored_headers
from mecha.forges import payload_shape
from mecha.forges.payload import (
    bool_at,
    check_hmac_signature,
    commit_lines,
    int_at,
    joined_names,
    load_json_object,
    object_at,
    required_header,
    text_at,
)

SOURCE = "github"
SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_PREFIX = "sha256="
#: the request headers kept with a GitHub event (besides content-type and user-agent)
STORED_HEADERS = (
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type",
    SIGNATURE_HEADER,
)

Attrs = dict[str, AttrValue]


def verify_github(body: bytes, headers: Mapping[str, str], *, secrets: Sequence[str]) -> None:
    """Refuse (``WebhookError`` 401) a delivery whose ``X-Hub-Signature-256`` is not the
    HMAC-SHA256 of ``body`` under one of ``secrets`` (several: secret rotation).

    Unsigned deliveries are never accepted: with no secret configured every delivery is
    refused. The body is not parsed.
    """
    configured = [secret for secret in secrets if secret]
    if not configured:
        raise WebhookError(
            401,
            "no GitHub webhook secret is configured, so the delivery cannot be verified",
            hint="set github.webhook_secret in secrets.yml to the Secret of the webhook on "
            "GitHub; Mecha never accepts unsigned GitHub deliveries",
        )
    value = headers.get(SIGNATURE_HEADER.lower())
    if value is None:
        if "x-hub-signature" in headers:
            raise WebhookError(
                401,
                "sha1 signatures (X-Hub-Signature) are not accepted; the delivery has no "
                "X-Hub-Signature-256 header",
                hint="GitHub sends X-Hub-Signature-256 for every webhook that has a secret; "
                "check that no proxy drops it, or upgrade an old GitHub Enterprise Server",
            )
        raise WebhookError(
            401,
            f"missing {SIGNATURE_HEADER} header",
            hint="give the webhook a Secret on GitHub (Settings → Webhooks → Edit) equal to "
            "github.webhook_secret in secrets.yml",
        )
    check_hmac_signature(
        body,
        value,
        header=SIGNATURE_HEADER,
        prefix=SIGNATURE_PREFIX,
        secrets=configured,
        setting="github.webhook_secret",
    )


def parse_github(body: bytes, headers: Mapping[str, str]) -> Delivery:
    """Turn a verified GitHub delivery into a ``Delivery`` (``WebhookError`` 400 if it cannot
    be read: a missing header, a body that is not a JSON object or repeats a key, or the
    fields of an event Mecha reads missing or of the wrong type: ``payload_shape``)."""
    event = required_header(
        headers, "X-GitHub-Event", hint="GitHub sends it with every delivery; is this GitHub?"
    )
    delivery_id = checked_delivery_id(
        required_header(
            headers,
            "X-GitHub-Delivery",
            hint="GitHub sends it with every delivery; is this GitHub?",
        ),
        "X-GitHub-Delivery",
    )
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise WebhookError(
            400,
            "the GitHub delivery is form-encoded (application/x-www-form-urlencoded)",
            hint="set the webhook's Content type to application/json on GitHub",
        )
    payload = load_json_object(body, what="GitHub delivery body")
    shape = payload_shape.GITHUB.get(event)
    if shape is not None:
        payload_shape.check_shape(payload, shape, forge="GitHub", event=event)
    action = payload.get("action")
    kind = f"{event}.{action}" if isinstance(action, str) and action and event != "ping" else event
    attrs = _common_attrs(payload)
    extract = _EXTRACTORS.get(event)
    if extract is not None:
        attrs.update(extract(payload))
    return Delivery(
        source=SOURCE,
        type=kind,
        delivery_id=delivery_id,
        actor=text_at(payload, "sender", "login"),
        subject=text_at(payload, "repository", "full_name"),
        attrs=attrs,
        raw=body,
        headers=stored_headers(headers, STORED_HEADERS),
    )


def _common_attrs(payload: dict[str, Any]) -> Attrs:
    full_name = text_at(payload, "repository", "full_name")
    owner, _, name = full_name.partition("/")
    if not full_name:
        owner = text_at(payload, "repository", "owner", "login")
        name = text_at(payload, "repository", "name")
    return {
        "repo_owner": owner,
        "repo_name": name,
        "sender": text_at(payload, "sender", "login"),
        # User, Bot or Organization: a bot is told by this, never by its login
        "sender_type": text_at(payload, "sender", "type"),
        "installation_id": int_at(payload, "installation", "id"),
    }


def _pull_request(payload: dict[str, Any]) -> Attrs:
    pr = object_at(payload, "pull_request")
    head_sha = text_at(pr, "head", "sha")
    base_repo = text_at(pr, "base", "repo", "full_name")
    # head.repo is null once a fork is deleted: that still counts as a fork
    head_repo = text_at(pr, "head", "repo", "full_name")
    return {
        "number": int_at(payload, "number") or int_at(pr, "number"),
        "title": text_at(pr, "title"),
        "body": text_at(pr, "body"),
        "head_sha": head_sha,
        "head_branch": text_at(pr, "head", "ref"),
        "ref": head_sha,
        "base_branch": text_at(pr, "base", "ref"),
        "base_sha": text_at(pr, "base", "sha"),
        "labels": joined_names(pr.get("labels"), "name"),
        "draft": bool_at(pr, "draft"),
        "author_association": text_at(pr, "author_association"),
        "base_repo": base_repo,
        "head_repo": head_repo,
        "is_fork": head_repo != base_repo,
    }


def _review_comment(payload: dict[str, Any]) -> Attrs:
    attrs = _pull_request(payload)
    attrs["comment"] = text_at(payload, "comment", "body")
    attrs["comment_author"] = text_at(payload, "comment", "user", "login")
    attrs["author_association"] = text_at(payload, "comment", "author_association")
    attrs["comment_id"] = int_at(payload, "comment", "id")
    return attrs


def _review(payload: dict[str, Any]) -> Attrs:
    attrs = _pull_request(payload)
    attrs["comment"] = text_at(payload, "review", "body")
    attrs["review_state"] = text_at(payload, "review", "state")
    attrs["comment_author"] = text_at(payload, "review", "user", "login")
    attrs["author_association"] = text_at(payload, "review", "author_association")
    # a review is reacted to through GraphQL, which names it by its node id
    attrs["comment_id"] = int_at(payload, "review", "id")
    attrs["comment_node_id"] = text_at(payload, "review", "node_id")
    return attrs


def _push(payload: dict[str, Any]) -> Attrs:
    return {
        "ref": text_at(payload, "ref"),
        "head_sha": text_at(payload, "after"),
        "compare_url": text_at(payload, "compare"),
        "commits": commit_lines(payload.get("commits")),
    }


def _issues(payload: dict[str, Any]) -> Attrs:
    issue = object_at(payload, "issue")
    return {
        "number": int_at(issue, "number"),
        "title": text_at(issue, "title"),
        "body": text_at(issue, "body"),
        "labels": joined_names(issue.get("labels"), "name"),
        "author_association": text_at(issue, "author_association"),
    }


def _issue_comment(payload: dict[str, Any]) -> Attrs:
    issue = object_at(payload, "issue")
    return {
        "number": int_at(issue, "number"),
        "title": text_at(issue, "title"),
        "comment": text_at(payload, "comment", "body"),
        "comment_author": text_at(payload, "comment", "user", "login"),
        "labels": joined_names(issue.get("labels"), "name"),
        "author_association": text_at(payload, "comment", "author_association"),
        "comment_id": int_at(payload, "comment", "id"),
        # GitHub reports comments on pull requests as issue comments on the PR's issue
        "is_pull_request": issue.get("pull_request") is not None,
    }


_EXTRACTORS: dict[str, Callable[[dict[str, Any]], Attrs]] = {
    "pull_request": _pull_request,
    "pull_request_review_comment": _review_comment,
    "pull_request_review": _review,
    "push": _push,
    "issues": _issues,
    "issue_comment": _issue_comment,
}
