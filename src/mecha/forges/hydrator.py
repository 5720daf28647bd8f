"""Which events get a diff, and from which forge client: ``build_hydrator``.

Pull request events (``pull_request*`` on GitHub, ``merge_request*`` on GitLab) and
comments on pull requests are hydrated, once per event, only when some worker takes the
event. A forge without API credentials is not asked: a prompt that uses ``{{.diff}}`` then
fails for that worker with a message naming the key.

``since_last`` adds, for one worker, the diff since its last review of the pull request
(``forges.incremental``): the engine reads that worker's last reviewed head from the store
and hands it over, so the forge side never touches the store.

A GitLab note that a ``command:`` rule would take gets its author's access level first
(``access``, from the members API), which trust needs; without a GitLab token it is not
asked, and trust refuses the command saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from mecha.config.server_file import ServerConfig
from mecha.event import Event
from mecha.forges.credentials import github_api_url, github_auth, gitlab_url
from mecha.forges.github import since_last as github_since
from mecha.forges.github.hydrate import GitHubClient
from mecha.forges.gitlab import since_last as gitlab_since
from mecha.forges.gitlab.hydrate import GitLabClient
from mecha.forges.hydration import Hydration
from mecha.forges.incremental import Compared, since_last_attrs
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

    async def since_last(self, event: Event, last: str, full: Hydration) -> dict[str, str]:
        """The incremental-review attributes (``forges.incremental``) for a worker whose last
        completed review of this pull request was at ``last`` ("" if none); ``full`` is what
        ``hydrate`` added, the fallback. Empty for an event this hydrator does not handle."""
        if not self.handles(event):
            return {}
        compared: Compared | None = None
        if self.github is not None and event.source == "github":
            client: GitHubClient | GitLabClient = self.github
            if last:
                compared = await github_since.compare_since(self.github, event.attrs, last)
        else:
            assert self.gitlab is not None
            client = self.gitlab
            if last:
                compared = await gitlab_since.compare_since(self.gitlab, event.attrs, last)
        if compared is not None and compared.fallback:
            log.info("event %s: the full diff since %s: %s", event.id, last[:12], compared.fallback)
        return since_last_attrs(full.attrs, last, compared, max_bytes=client.max_diff_bytes)

    def asks_access(self, event: Event) -> bool:
        """True for a GitLab note when a GitLab token is set (the members API can be asked)."""
        return self.gitlab is not None and event.source == "gitlab" and _kind(event) == "note"

    async def access(self, event: Event) -> dict[str, Any]:
        """The note author's access level (``mecha.forges.gitlab.members``)."""
        if self.gitlab is None or not self.asks_access(event):
            return {"author_access_error": "no GitLab token in secrets.yml to ask with"}
        found = await self.gitlab.access(event.attrs)
        if "author_access_error" in found:
            log.warning("event %s: %s", event.id, found["author_access_error"])
        return found


def _kind(event: Event) -> str:
    return event.type.split(".", 1)[0]


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
    auth = github_auth(secrets)
    if auth is None:
        return None
    url = github_api_url(config, environ)
    return GitHubClient(http, api_url=url, auth=auth, max_diff_bytes=config.max_diff)


def _gitlab(http: httpx.AsyncClient, secrets: Secrets, config: ServerConfig) -> GitLabClient | None:
    gl = secrets.gitlab
    if not gl.token:
        return None
    return GitLabClient(
        http, base_url=gitlab_url(secrets), token=gl.token, max_diff_bytes=config.max_diff
    )
