"""`mecha event send`: sign a payload (a file, or a sample shipped with Mecha) with the
configured secret and post it to the server; `mecha event samples`: what samples there are.

Before posting a GitHub or GitLab payload, it is read the way the server will read it, and
every field write-back needs that it lacks is named (``writeplan.writeback_gaps``): the
server still stores and matches such an event, but cannot write a result back.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mecha import samples
from mecha.cli.context import AppContext
from mecha.errors import SecretsError, ServerError, UsageError, WebhookError
from mecha.event import Delivery
from mecha.forges.signing import (
    GITLAB_EVENTS,
    github_headers,
    gitlab_headers,
    hmac_sha256_hex,
    standard_webhook_headers,
)

TIMEOUT = 30.0
#: headers a sample's recording carries that name one delivery (a new one is made per send)
_DELIVERY_HEADERS = {"x-github-delivery", "idempotency-key", "x-gitlab-event-uuid"}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What is to be sent: the body, where, as which event, and recorded headers to keep."""

    body: bytes
    source: str
    event: str
    #: how messages name it: the file, or ``sample github/pull_request.opened``
    label: str
    recorded: dict[str, str] = field(default_factory=dict)


def outgoing(
    payload: Path | None, *, sample: str | None, source: str | None, event_type: str | None
) -> Outgoing:
    """The delivery the command line asks for: a file (with ``--event``) or a sample."""
    if payload is not None and sample is not None:
        raise UsageError(
            "give either a payload file or --sample, not both",
            hint="`mecha event send payload.json --event pull_request`, or "
            "`mecha event send --sample pull_request.opened`",
        )
    if sample is not None:
        return _from_sample(sample, source=source, event_type=event_type)
    if payload is None:
        raise UsageError(
            "nothing to send: give a payload file or --sample NAME",
            hint=f"try `mecha event send --sample pull_request.opened`; the samples are "
            f"{samples.listing()}",
        )
    if not event_type:
        raise UsageError(
            f"--event is needed to send {payload}: the forge's event header (GitHub: "
            "pull_request, issues, push; GitLab: merge_request, note, push)",
            hint=f"`mecha event send {payload} --event pull_request`, or send a sample, which "
            "knows its event: `mecha event send --sample pull_request.opened`",
        )
    return Outgoing(_read(payload), source or "github", event_type, str(payload))


def _from_sample(name: str, *, source: str | None, event_type: str | None) -> Outgoing:
    found = samples.find(name, source)
    if event_type and event_type not in (found.event, _short_gitlab(found.event)):
        raise UsageError(
            f"sample {found.forge}/{name} is a {found.event!r} delivery, not {event_type!r}",
            hint="leave out --event: a sample sends its own",
        )
    return Outgoing(
        found.body, found.forge, found.event, f"sample {found.forge}/{name}", found.headers
    )


def _short_gitlab(header: str) -> str:
    return next((short for short, long in GITLAB_EVENTS.items() if long == header), header)


def send_payload(
    app: AppContext,
    payload: Path,
    *,
    source: str,
    event_type: str,
    addr: str | None,
    delivery_id: str | None,
) -> tuple[int, Any]:
    """Post the signed payload file; (HTTP status, answer JSON)."""
    sending = Outgoing(_read(payload), source, event_type, str(payload))
    return send(app, sending, addr=addr, delivery_id=delivery_id)


def send(
    app: AppContext, sending: Outgoing, *, addr: str | None, delivery_id: str | None
) -> tuple[int, Any]:
    """Sign ``sending`` and post it to the server; (HTTP status, answer JSON)."""
    import httpx

    from mecha.config.settings import load_server_config

    config = load_server_config(app.settings, app.environ)
    headers = signed_headers(app, sending, delivery=delivery_id or str(uuid.uuid4()))
    url = f"http://{_connect_to(addr or config.addr or '127.0.0.1:21212')}/webhook/{sending.source}"
    try:
        reply = httpx.post(url, content=sending.body, headers=headers, timeout=TIMEOUT)
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


def post_action(app: AppContext, path: str, *, by: str, addr: str | None) -> tuple[int, Any]:
    """POST an operator action (``path``) to the running server with its API key and
    ``{"by": by}``; (HTTP status, answer JSON)."""
    import httpx

    from mecha.config.settings import load_server_config

    config = load_server_config(app.settings, app.environ)
    url = f"http://{_connect_to(addr or config.addr or '127.0.0.1:21212')}{path}"
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    try:
        reply = httpx.post(url, json={"by": by}, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise ServerError(
            f"no mecha server answered at {url}: {exc}",
            hint="an event is replayed by the running mecha serve: start it, or point --addr "
            "at where it listens",
        ) from None
    try:
        answer = reply.json()
    except ValueError:
        answer = {"error": reply.text[:500]}
    return reply.status_code, answer


def signed_headers(app: AppContext, sending: Outgoing, *, delivery: str) -> dict[str, str]:
    """The headers to send: a sample's recorded ones, this delivery's id and the signature."""
    made = _headers(
        app, sending.body, source=sending.source, event=sending.event, delivery=delivery
    )
    replaced = {name.lower() for name in made} | _DELIVERY_HEADERS
    kept = {k: v for k, v in sending.recorded.items() if k.lower() not in replaced}
    return {**kept, **made}


def writeback_warnings(sending: Outgoing) -> list[str]:
    """What write-back will lack for ``sending`` (a GitHub or GitLab payload), one line each."""
    from mecha.policy.plan import writeback_gaps

    delivery = _parsed(sending)
    if delivery is None or delivery.type == "ping":
        return []
    return [
        f"{sending.label} has no {gap.field}: Mecha needs it to write back {gap.needed_for}"
        for gap in writeback_gaps(delivery.source, delivery.type, delivery.attrs)
    ]


def _parsed(sending: Outgoing) -> Delivery | None:
    """``sending`` read as the server reads it; None for other sources or unreadable bodies
    (the server's answer says what is wrong with those)."""
    from mecha.forges.github.webhook import parse_github
    from mecha.forges.gitlab.webhook import parse_gitlab

    headers = {name.lower(): value for name, value in sending.recorded.items()}
    try:
        if sending.source == "github":
            headers.update({"x-github-event": sending.event, "x-github-delivery": "check"})
            return parse_github(sending.body, headers)
        if sending.source == "gitlab":
            event = GITLAB_EVENTS.get(sending.event, sending.event)
            headers.update({"x-gitlab-event": event, "x-gitlab-event-uuid": "check"})
            return parse_gitlab(sending.body, headers)
    except WebhookError:
        return None
    return None


def sample_rows() -> list[list[str]]:
    """``SOURCE SAMPLE EVENT ABOUT`` for every shipped sample."""
    rows = []
    for forge in samples.FORGES:
        for name in samples.names(forge):
            sample = samples.load(forge, name)
            delivery = _parsed(Outgoing(sample.body, forge, sample.event, name, sample.headers))
            rows.append([forge, name, sample.event, _about(delivery)])
    return rows


def _about(delivery: Delivery | None) -> str:
    if delivery is None:
        return "-"
    if delivery.type == "ping":
        return f"{delivery.subject}: the ping GitHub sends when a webhook is made (not stored)"
    attrs = delivery.attrs
    number = attrs.get("number")
    if isinstance(number, int) and number > 0:
        sign = "!" if delivery.source == "gitlab" and attrs.get("base_branch") else "#"
        return f"{delivery.subject}{sign}{number}: {attrs.get('title', '')}"
    return f"{delivery.subject} {attrs.get('ref', '')}".strip()


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
        if secrets.gitlab.signing_tokens and not secrets.gitlab.webhook_secrets:
            signing = secrets.gitlab.signing_tokens[0]
            stamp = int(time.time())
            made = gitlab_headers(token="", event=event, delivery_id=delivery)
            del made["X-Gitlab-Token"]
            made.update(standard_webhook_headers(body, secret=signing, message_id=delivery,
                                                 timestamp=stamp))  # fmt: skip
            return made
        token = _first(
            secrets.gitlab.webhook_secrets, "gitlab.webhook_secret (or gitlab.signing_token)"
        )
        return gitlab_headers(token=token, event=event, delivery_id=delivery)
    return _generic_headers(app, body, source=source, event=event, delivery=delivery)


def _generic_headers(
    app: AppContext, body: bytes, *, source: str, event: str, delivery: str
) -> dict[str, str]:
    from mecha.config.settings import load_server_config
    from mecha.config.sources import SourceAuth

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
