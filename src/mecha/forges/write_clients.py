"""The write-back clients for the forges secrets.yml has credentials for: ``build_writers``.

A forge without credentials gets no writer: its events' writes are dry runs, shown with
the requests they would make (``previews`` can always say that, needing no credentials).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from mecha.config.server_file import ServerConfig
from mecha.forges.credentials import github_api_url, github_auth, gitlab_url
from mecha.forges.github.auth import GitHubAuth
from mecha.forges.github.write import GitHubWriter
from mecha.forges.gitlab.write import GitLabWriter
from mecha.forges.writer import Writer
from mecha.secrets import Secrets


def build_writers(
    http: httpx.AsyncClient,
    *,
    secrets: Secrets,
    config: ServerConfig,
    environ: Mapping[str, str],
) -> tuple[dict[str, Writer | None], dict[str, Writer]]:
    """``(writers, previews)`` by forge name; a writer is None without credentials."""
    api_url = github_api_url(config, environ)
    base_url = gitlab_url(secrets)
    previews: dict[str, Writer] = {
        "github": GitHubWriter(http, api_url=api_url, auth=GitHubAuth.token("")),
        "gitlab": GitLabWriter(http, base_url=base_url, token=""),
    }
    auth = github_auth(secrets)
    writers: dict[str, Writer | None] = {
        "github": GitHubWriter(http, api_url=api_url, auth=auth) if auth else None,
        "gitlab": (
            GitLabWriter(http, base_url=base_url, token=secrets.gitlab.token)
            if secrets.gitlab.token
            else None
        ),
    }
    return writers, previews
