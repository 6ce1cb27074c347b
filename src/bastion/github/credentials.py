"""The seam for GitHub credentials: who holds a token for an organisation, and how to drop a rejected one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import SecretStr

from bastion.errors import Unavailable

__all__ = ["GitHubCredentials", "GitHubToken", "NoCredentials", "StaticToken"]


class NoCredentials(Unavailable):
    """Nothing is configured for this organisation (no App installation, no token secret): git may still try
    anonymously (public repositories), the REST backend cannot."""


@dataclass(frozen=True, slots=True)
class GitHubToken:
    """A token for GitHub's API and git over HTTPS. `expires_at` is None for tokens that do not expire (PATs)."""

    value: SecretStr
    expires_at: datetime | None = None
    kind: str = "pat"  # "installation" | "pat"


class GitHubCredentials(Protocol):
    """Hands out tokens per organisation (GitHub App installation tokens, or a PAT)."""

    async def token_for(self, owner: str) -> GitHubToken:
        """A token valid for at least a few minutes for repositories of `owner`; raises Unavailable if none."""
        ...

    def invalidate(self, owner: str) -> None:
        """Forget the cached token of `owner` (GitHub answered 401 with it)."""
        ...


class StaticToken:
    """One token for every organisation (a personal access token, or a test stand-in)."""

    def __init__(self, token: str) -> None:
        self._token = GitHubToken(SecretStr(token))

    async def token_for(self, owner: str) -> GitHubToken:
        return self._token

    def invalidate(self, owner: str) -> None:
        return None
