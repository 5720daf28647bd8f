"""`mecha event send`: sign a payload file with the configured secret and post it to the server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from mecha.cli.context import AppContext
from mecha.errors import SecretsError, ServerError, UsageError
from mecha.forges.signing import github_headers, gitlab_headers, hmac_sha256_hex

TIMEOUT = 30.0


def send_payload(
    app: AppContext,
    payload: Path,
    *,
    source: str,
    event_type: str,
    addr: str | None,
    delivery_id: str | None,
) -> tuple[int, Any]:
    """Post the signed payload; (HTTP status, answer JSON)."""
    import httpx

    from mecha.config import load_server_config

    body = _read(payload)
    config = load_server_config(app.settings, app.environ)
    delivery = delivery_id or str(uuid.uuid4())
    headers = _headers(app, body, source=source, event=event_type, delivery=delivery)
    url = f"http://{_connect_to(addr or config.addr or '127.0.0.1:21212')}/webhook/{source}"
    try:
        reply = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise ServerError(
            f"no mecha server answered at {url}: {exc}",
            hint="start it with `mecha serve`, or point --addr at where it listens",
        ) from None
    try:
        answer = reply.json()
    except ValueError:
        answer = {"body": reply.text[:500]}
    return reply.status_code, answer


def _read(payload: Path) -> bytes:
    body = payload.read_bytes()
    try:
        json.loads(body)
    except ValueError as exc:
        raise UsageError(f"{payload} is not JSON: {exc}", hint="send a JSON payload file") from None
    return body


def _headers(
    app: AppContext, body: bytes, *, source: str, event: str, delivery: str
) -> dict[str, str]:
    secrets = app.secrets()
    if source == "github":
        secret = _first(secrets.github.webhook_secrets, "github.webhook_secret")
        return github_headers(body, secret=secret, event=event, delivery_id=delivery)
    if source == "gitlab":
        token = _first(secrets.gitlab.webhook_secrets, "gitlab.webhook_secret")
        return gitlab_headers(token=token, event=event, delivery_id=delivery)
    return _generic_headers(app, body, source=source, event=event, delivery=delivery)


def _generic_headers(
    app: AppContext, body: bytes, *, source: str, event: str, delivery: str
) -> dict[str, str]:
    from mecha.config import load_server_config
    from mecha.sources import SourceAuth

    config = load_server_config(app.settings, app.environ)
    spec = config.sources.get(source)
    if spec is None:
        known = ", ".join(["github", "gitlab", *sorted(config.sources)])
        raise UsageError(f'unknown source "{source}"', hint=f"known sources: {known}")
    headers = {"Content-Type": "application/json", spec.type_header: event}
    if spec.delivery_header:
        headers[spec.delivery_header] = delivery
    if spec.auth is SourceAuth.API_KEY:
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        return headers
    keys = app.secrets().sources.get(source, {})
    secrets = [value for key, value in sorted(keys.items()) if key.startswith("secret")]
    secret = _first(tuple(secrets), f"sources.{source}.secret")
    headers[spec.signature_header] = spec.signature_prefix + hmac_sha256_hex(secret, body)
    return headers


def _first(values: tuple[str, ...], key: str) -> str:
    if not values:
        raise SecretsError(
            f"no {key} is set, so the delivery cannot be signed",
            hint=f"add {key} to ~/.mecha/secrets.yml (the same secret the server checks)",
        )
    return values[0]


def _connect_to(addr: str) -> str:
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - listening everywhere: connect locally
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
