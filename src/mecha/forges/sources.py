"""The webhook sources serve takes: one verifying parser per source (github, gitlab, each
generic source of config.yml), built from secrets.yml's webhook secrets."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from mecha.config.server_file import ServerConfig
from mecha.config.sources import GenericSource
from mecha.event import Delivery
from mecha.forges.generic import parse_generic, verify_generic
from mecha.forges.github.webhook import parse_github, verify_github
from mecha.forges.gitlab.webhook import parse_gitlab, verify_gitlab
from mecha.secrets import Secrets

#: verifies and parses one delivery; WebhookError when it is refused
SourceHandler = Callable[[bytes, Mapping[str, str]], Delivery]


def build_sources(
    secrets: Secrets, config: ServerConfig, *, api_key: str
) -> dict[str, SourceHandler]:
    """One verifying parser per webhook source: github, gitlab and each generic source."""

    def github(body: bytes, headers: Mapping[str, str]) -> Delivery:
        verify_github(body, headers, secrets=secrets.github.webhook_secrets)
        return parse_github(body, headers)

    def gitlab(body: bytes, headers: Mapping[str, str]) -> Delivery:
        verify_gitlab(
            body, headers, tokens=secrets.gitlab.webhook_secrets,
            signing_tokens=secrets.gitlab.signing_tokens, now=time.time(),
        )  # fmt: skip
        return parse_gitlab(body, headers)

    handlers: dict[str, SourceHandler] = {"github": github, "gitlab": gitlab}
    for name, source in config.sources.items():
        handlers[name] = _generic(source, secrets, api_key)
    return handlers


def _generic(source: GenericSource, secrets: Secrets, api_key: str) -> SourceHandler:
    keys = secrets.sources.get(source.name, {})
    accepted = tuple(value for key, value in sorted(keys.items()) if key.startswith("secret"))

    def handle(body: bytes, headers: Mapping[str, str]) -> Delivery:
        verify_generic(source, body, headers, secrets=accepted, api_key=api_key)
        return parse_generic(source, body, headers)

    return handle
