"""Which forge credentials secrets.yml holds, and where each forge's API is.

Shared by hydration (reading diffs) and write-back (comments, labels, statuses), so both
sign in the same way: a GitHub App when ``github.app_id`` and a key are set, else
``github.token``; GitLab with ``gitlab.token`` at ``gitlab.url`` (default gitlab.com).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mecha.config.server_file import DEFAULT_GITHUB_API_URL, ServerConfig
from mecha.errors import SecretsError
from mecha.forges.github.auth import GitHubAuth
from mecha.secrets import Secrets

DEFAULT_GITLAB_URL = "https://gitlab.com"


def github_auth(secrets: Secrets) -> GitHubAuth | None:
    """The GitHub sign-in secrets.yml configures, or None."""
    gh = secrets.github
    if gh.app_id and (gh.private_key or gh.private_key_path):
        return GitHubAuth.app(gh.app_id, _private_key(gh.private_key, gh.private_key_path))
    if gh.token:
        return GitHubAuth.token(gh.token)
    return None


def github_api_url(config: ServerConfig, environ: Mapping[str, str]) -> str:
    """GitHub's API address: ``config.github_api_url``, which ``MECHA_GITHUB_API_URL`` or
    upstream's ``GITHUB_API_URL`` set over config.yml's key when the settings were resolved
    (``mecha.config.environment``); api.github.com by default. ``environ`` is not read
    again: the one precedence is the resolution's."""
    del environ
    return (config.github_api_url or DEFAULT_GITHUB_API_URL).rstrip("/")


def gitlab_url(secrets: Secrets) -> str:
    """The GitLab instance's base URL (its API is under ``/api/v4``)."""
    return (secrets.gitlab.url or DEFAULT_GITLAB_URL).rstrip("/")


def _private_key(text: str, path: str) -> str:
    if text:
        return text
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretsError(
            f"cannot read github.private_key_path {path}: {exc}",
            hint="point it at the GitHub App's PEM file, readable by this user",
        ) from None


def web_base(forge: str, api_url: str) -> str:
    """A forge's web address from its API address: api.github.com → github.com, an
    Enterprise host's /api/v3 and GitLab's /api/v4 dropped."""
    url = api_url.rstrip("/")
    for suffix in ("/api/v3", "/api/v4"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url.replace("://api.github.com", "://github.com") if forge == "github" else url


def web_urls(config: ServerConfig, secrets: Secrets, environ: Mapping[str, str]) -> dict[str, str]:
    """Each forge's web address (where the dashboard links to what a write made), from the
    API addresses hydration and write-back use."""
    return {
        "github": web_base("github", github_api_url(config, environ)),
        "gitlab": web_base("gitlab", gitlab_url(secrets)),
    }
