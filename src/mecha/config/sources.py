"""Generic webhook sources: how one is described in ``config.yml`` (pure values, no I/O).

Upstream had generic sources in code but no way to configure one. Ours::

    sources:
      alerts:                         # POST /webhook/alerts; workers use `source: alerts`
        type_header: X-Event-Type     # the header that carries the event type (default)
        delivery_header: X-Request-Id # dedupe on it; without one, on a hash of type + body
        auth: hmac                    # hmac (default) or api_key
        signature_header: X-Signature-256   # for hmac (default X-Hub-Signature-256)
        signature_prefix: "sha256="   # text before the hex digest (default "sha256=")

With ``auth: hmac`` the secrets live in ``secrets.yml`` under ``sources.<name>``: every key
that starts with ``secret`` (``secret``, ``secret_next``, ...) is accepted, for rotation.
With ``auth: api_key`` the caller presents the server's API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: source names the server owns; a generic source may not take them
RESERVED_SOURCES = frozenset({"github", "gitlab", "slack", "telegram", "cron"})


class SourceAuth(StrEnum):
    """How a generic source proves a delivery is genuine."""

    HMAC = "hmac"
    API_KEY = "api_key"


@dataclass(frozen=True, kw_only=True, slots=True)
class GenericSource:
    """One configured generic source."""

    name: str
    type_header: str = "X-Event-Type"
    delivery_header: str = ""
    auth: SourceAuth = SourceAuth.HMAC
    signature_header: str = "X-Hub-Signature-256"
    signature_prefix: str = "sha256="
