"""Secrets a worker must never see: canary values for every secret secrets.yml can hold."""

from __future__ import annotations

from mecha.secrets import GitHubSecrets, GitLabSecrets, Secrets


def canary_secrets(claude: str) -> Secrets:
    """Canaries everywhere, and ``claude`` as the one token a worker may be given."""
    return Secrets(
        tokens={"claude": {"default": claude}, "codex": {"default": "sk-CANARYCODEX" + "9" * 20}},
        github=GitHubSecrets(
            token="ghp_CANARYGITHUB" + "1" * 26,
            webhook_secrets=("canary-github-hook-1", "canary-github-hook-2"),
        ),
        gitlab=GitLabSecrets(token="glpat-CANARYGITLAB", webhook_secrets=("canary-gitlab-hook",)),
        slack_signing_secret="canary-slack-signing",
        telegram_secret_token="canary-telegram",
        sources={"jenkins": {"secret": "canary-jenkins-source"}},
    )
