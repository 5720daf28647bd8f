"""How Mecha signs in to GitHub's API: a token, or a GitHub App: ``GitHubAuth``.

A GitHub App signs a short JWT (RS256, ``iss`` = the App's id) with its private key and
trades it for an installation token at ``POST /app/installations/{id}/access_tokens``.
Installation tokens are kept per installation until 60 seconds before they expire.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import jwt

from mecha.forges.fetch import FetchError, fetch

JSON_ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
#: an installation token is renewed this many seconds before it expires
RENEW_BEFORE = 60.0
#: the JWT is dated this far back against clock drift, and lives 9 minutes (GitHub allows 10)
_JWT_BACKDATE = 60
_JWT_LIFETIME = 540
_TOKEN_READ = 64 * 1024
#: assumed lifetime when GitHub's answer has no readable expires_at
_DEFAULT_LIFETIME = 600.0


@dataclass(frozen=True)
class _Cached:
    token: str
    expires: float


class GitHubAuth:
    """A personal/fine-grained token, or a GitHub App (id + private key); repr shows no secret."""

    def __init__(self, *, token: str = "", app_id: str = "", private_key: str = "") -> None:
        self._token = token
        self.app_id = app_id
        self._private_key = private_key
        self._installations: dict[str, _Cached] = {}

    @classmethod
    def token(cls, token: str) -> GitHubAuth:
        """Sign in with a token: ``Authorization: Bearer <token>``."""
        return cls(token=token)

    @classmethod
    def app(cls, app_id: str | int, private_key: str) -> GitHubAuth:
        """Sign in as a GitHub App installation; ``private_key`` is the App's PEM text."""
        return cls(app_id=str(app_id), private_key=private_key)

    @property
    def is_app(self) -> bool:
        """True for GitHub App auth, which needs the event's ``installation_id``."""
        return bool(self.app_id)

    def __repr__(self) -> str:
        return f"GitHubAuth(app_id={self.app_id!r})" if self.is_app else "GitHubAuth(token)"

    def secrets(self) -> list[str]:
        """Every secret this holds (for scrubbing messages): the token, installation tokens."""
        found = [self._token, self._private_key]
        found += [cached.token for cached in self._installations.values()]
        return [value for value in found if value]

    def app_jwt(self, now: float | None = None) -> str:
        """The App's JWT: RS256, ``iss`` = app id, valid from a minute ago for 9 minutes."""
        issued = int(time.time() if now is None else now) - _JWT_BACKDATE
        claims = {"iat": issued, "exp": issued + _JWT_LIFETIME, "iss": self.app_id}
        try:
            return jwt.encode(claims, self._private_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise FetchError(
                f"the GitHub App private key cannot sign a JWT ({type(exc).__name__}); "
                "check github.private_key in secrets.yml"
            ) from None

    async def authorization(
        self, http: httpx.AsyncClient, *, api_url: str, installation_id: str, timeout: float
    ) -> str:
        """The ``Authorization`` header value; FetchError if an App token cannot be had."""
        if not self.is_app:
            return f"Bearer {self._token}"
        if not installation_id:
            raise FetchError(
                "GitHub App auth needs the event's installation_id, and this event has none"
            )
        cached = self._installations.get(installation_id)
        if cached is None or time.time() >= cached.expires - RENEW_BEFORE:
            cached = await self._new_token(http, api_url, installation_id, timeout)
            self._installations[installation_id] = cached
        return f"Bearer {cached.token}"

    async def _new_token(
        self, http: httpx.AsyncClient, api_url: str, installation_id: str, timeout: float
    ) -> _Cached:
        what = f"GitHub App {self.app_id} token for installation {installation_id}"
        headers = {
            "Authorization": f"Bearer {self.app_jwt()}",
            "Accept": JSON_ACCEPT,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "mecha",
        }
        url = f"{api_url}/app/installations/{installation_id}/access_tokens"
        answer = await fetch(
            http, url, what=what, method="POST", headers=headers, limit=_TOKEN_READ, timeout=timeout
        )
        data: Any = answer.json(what)
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise FetchError(f"{what}: the answer holds no token")
        return _Cached(token, _expiry(data.get("expires_at")))


def _expiry(value: Any) -> float:
    """``expires_at`` (ISO 8601, e.g. 2026-01-01T10:00:00Z) as epoch seconds."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return time.time() + _DEFAULT_LIFETIME
