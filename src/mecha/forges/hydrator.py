"""Which events get a diff, and from which forge client: ``build_hydrator``.

Pull request events (``pull_request*`` on GitHub, ``merge_request*`` on GitLab) and
comments on pull requests are hydrated, once per event, only when some worker takes the
event. A forge without API credentials is not asked: a prompt that uses ``{{.diff}}`` then
fails for that worker with a message naming the key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx

from mecha.config_file import DEFAULT_GITHUB_API_URL, ServerConfig
from mecha.errors import SecretsError
from mecha.event import Event
from mecha.forges.github import GitHubClient
from mecha.forges.github_auth import GitHubAuth
from mecha.forges.gitlab import GitLabClient
from mecha.forges.hydration import Hydration
from mecha.secrets import Secrets

log = logging.getLogger(__name__)


class ForgeHydrator:
    """The forge clients that are configured, and which events they can hydrate."""

    def __init__(self, *, github: GitHubClient | None, gitlab: GitLabClient | None) -> None:
        self.github = github
        self.gitlab = gitlab

    def handles(self, event: Event) -> bool:
        """True if ``event`` gets a diff: its forge has credentials and the type fits."""
        client = {"github": self.github, "gitlab": self.gitlab}.get(event.source)
        return client is not None and wants_diff(event)

    async def hydrate(self, event: Event) -> Hydration | None:
        """The diff and files for ``event``, or None if it gets none."""
        if not self.handles(event):
            return None
        client = self.github if event.source == "github" else self.gitlab
        assert client is not None
        result = await client.hydrate(event.attrs)
        if result.error:
            log.warning("event %s: hydration failed: %s", event.id, result.error)
        return result


def build_hydrator(
    http: httpx.AsyncClient,
    *,
    secrets: Secrets,
    config: ServerConfig,
    environ: Mapping[str, str],
) -> ForgeHydrator:
    """The clients for the forges that have credentials in secrets.yml."""
    return ForgeHydrator(
        github=_github(http, secrets, config, environ), gitlab=_gitlab(http, secrets, config)
    )


def wants_diff(event: Event) -> bool:
    """Pull/merge request events and comments on them."""
    kind = event.type.split(".", 1)[0]
    if event.source == "github":
        if kind.startswith("pull_request"):
            return True
        return kind == "issue_comment" and event.attrs.get("is_pull_request") is True
    if event.source == "gitlab":
        if kind == "merge_request":
            return True
        return kind == "note" and event.attrs.get("noteable_type") == "MergeRequest"
    return False


def _github(
    http: httpx.AsyncClient, secrets: Secrets, config: ServerConfig, environ: Mapping[str, str]
) -> GitHubClient | None:
    gh = secrets.github
    if gh.app_id and (gh.private_key or gh.private_key_path):
        auth = GitHubAuth.app(gh.app_id, _private_key(gh.private_key, gh.private_key_path))
    elif gh.token:
        auth = GitHubAuth.token(gh.token)
    else:
        return None
    url = environ.get("GITHUB_API_URL") or config.github_api_url or DEFAULT_GITHUB_API_URL
    return GitHubClient(http, api_url=url.rstrip("/"), auth=auth, max_diff_bytes=config.max_diff)


def _gitlab(http: httpx.AsyncClient, secrets: Secrets, config: ServerConfig) -> GitLabClient | None:
    gl = secrets.gitlab
    if not gl.token:
        return None
    base = (gl.url or "https://gitlab.com").rstrip("/")
    return GitLabClient(http, base_url=base, token=gl.token, max_diff_bytes=config.max_diff)


def _private_key(text: str, path: str) -> str:
    if text:
        return text
    from pathlib import Path

    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretsError(
            f"cannot read github.private_key_path {path}: {exc}",
            hint="point it at the GitHub App's PEM file, readable by this user",
        ) from None
