"""Signing deliveries the way each forge does (for `mecha event send`, tests and benchmarks).

The receiving side is in the ``*_webhook`` modules; these produce the headers a real
forge would send with a body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

#: GitLab's X-Gitlab-Event header for short event names
GITLAB_EVENTS = {
    "merge_request": "Merge Request Hook",
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "note": "Note Hook",
    "issue": "Issue Hook",
    "pipeline": "Pipeline Hook",
}


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(body: bytes, *, secret: str, event: str, delivery_id: str) -> dict[str, str]:
    """The headers GitHub sends with ``body``."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/mecha-send",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(secret, body),
    }


def gitlab_headers(*, token: str, event: str, delivery_id: str) -> dict[str, str]:
    """The headers GitLab sends with a secret token (``event`` short or as GitLab names it)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/mecha-send",
        "X-Gitlab-Event": GITLAB_EVENTS.get(event, event),
        "X-Gitlab-Event-UUID": delivery_id,
        "Idempotency-Key": delivery_id,
        "X-Gitlab-Token": token,
    }


def standard_webhook_headers(
    body: bytes, *, secret: str, message_id: str, timestamp: int
) -> dict[str, str]:
    """Standard Webhooks signature headers (GitLab's signing token).

    A secret written ``whsec_<base64>`` signs with the decoded key, any other with its bytes.
    """
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{digest}",
    }
