"""Building the GitHub credentials (and git's use of them) from Settings: one instance per process, shared by
the scheduled sync, webhooks and the REST backend, so each organisation's token is minted once."""

from __future__ import annotations

from functools import partial

from bastion.config import Settings
from bastion.github.api import GitHubApi
from bastion.github.app_credentials import GitHubAppCredentials
from bastion.github.git_auth import GitRemoteAuth
from bastion.github.hosts import git_web_url
from bastion.github.pat import PatSource
from bastion.secrets import SecretsCache, build_secrets, org_secret_names

__all__ = ["build_github_credentials", "git_auth_from_settings"]


def build_github_credentials(settings: Settings, secrets: SecretsCache | None = None) -> GitHubAppCredentials:
    """The App (when app_id and private_key_secret are set) with the PAT sources as fallback."""
    github = settings.github
    secrets = secrets or build_secrets(settings)
    pat = PatSource(
        secrets,
        token=github.token,
        secret_name=github.pat_secret,
        org_secret_names=partial(org_secret_names, settings.secrets),
    )
    return GitHubAppCredentials(
        secrets=secrets,
        api=GitHubApi(github.api_url, timeout=github.request_timeout_seconds),
        app_id=github.app_id,
        private_key_secret=github.private_key_secret,
        pat=pat,
        installation_ids=github.installation_ids,
        org_allowlist=github.org_allowlist,
        refresh_margin=github.token_refresh_seconds,
    )


def git_auth_from_settings(settings: Settings, credentials: GitHubAppCredentials | None = None) -> GitRemoteAuth:
    """What mirror syncs use for GitHub remotes (`bastion repo ...` builds its own; the server shares one)."""
    return GitRemoteAuth(credentials or build_github_credentials(settings), git_web_url(settings.github))
