"""Dashboard sessions: a signed cookie naming who signed in, and the CSRF token bound to it.

The cookie is ``<base64url JSON>.<HMAC-SHA256>``; the HMAC key comes from the API key, so
every node sharing the key accepts a session any of them issued, and changing the key ends
every session. Without an API key (an open loopback server) the key is random per process.
The CSRF token is an HMAC of the session's nonce: a page's forms carry it, and every POST
is refused without it (compared in constant time).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import unicodedata
from dataclasses import dataclass

#: the session cookie's name, and the login form's own (pre-session) CSRF cookie
COOKIE = "mecha_session"
LOGIN_COOKIE = "mecha_login"
#: how long a session lasts (seconds)
LIFETIME = 12 * 3600
#: the longest name a session keeps
MAX_NAME = 40


@dataclass(frozen=True, slots=True)
class Session:
    """Who is signed in (as they named themselves), the nonce the CSRF token is made from,
    and when the session ends (unix seconds)."""

    who: str
    nonce: str
    expires: float


class Sessions:
    """Issues and checks session cookies and CSRF tokens under one secret."""

    def __init__(self, api_key: str) -> None:
        if api_key:
            self._secret = hashlib.sha256(b"mecha-ui-session\0" + api_key.encode()).digest()
        else:
            self._secret = secrets.token_bytes(32)

    def issue(self, who: str, *, now: float) -> tuple[Session, str]:
        """A new session for ``who`` and its cookie value."""
        session = Session(who=clean_name(who), nonce=secrets.token_hex(16), expires=now + LIFETIME)
        body = json.dumps({"w": session.who, "n": session.nonce, "e": session.expires})
        payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return session, f"{payload}.{self._sign(payload)}"

    def read(self, value: str, *, now: float) -> Session | None:
        """The session a cookie value carries, or None (forged, damaged or expired)."""
        payload, _, signature = value.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(who=str(data["w"]), nonce=str(data["n"]), expires=float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > now else None

    def csrf(self, session: Session) -> str:
        """The CSRF token of ``session``'s forms."""
        return hmac.new(self._secret, b"csrf\0" + session.nonce.encode(), "sha256").hexdigest()

    def csrf_matches(self, session: Session, token: str) -> bool:
        """Whether ``token`` is ``session``'s CSRF token (constant time)."""
        return hmac.compare_digest(self.csrf(session).encode(), token.encode())

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), "sha256").hexdigest()


def clean_name(name: str) -> str:
    """A display name: printable characters only, spaces collapsed, at most MAX_NAME."""
    kept = "".join(c for c in name if unicodedata.category(c)[0] not in "CZ" or c == " ")
    return " ".join(kept.split())[:MAX_NAME]
