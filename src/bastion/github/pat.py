"""Personal access tokens, the fallback where no GitHub App installation covers an organisation.

Where the token comes from, first match wins: `github.token` (set directly), the one secret `github.pat_secret`,
or seed 000's per-organisation secrets (`mcp/github/{org}`, then `mcp/github/default`). A secret holds the token
as plain text or as JSON `{"token": "...", "expires_at": "..."}`. Nothing is cached here: every call asks the
secrets cache, so a rotated secret is picked up within its TTL, or at once after `invalidate` (a 401).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import SecretStr

from bastion.errors import Unavailable
from bastion.github.credentials import GitHubToken, NoCredentials
from bastion.secrets import Secret, SecretNotFound, SecretsCache

__all__ = ["PatSource", "token_from_secret"]


def token_from_secret(secret: Secret) -> str:
    """The token in a secret: the whole text, or the `token` field of a JSON object."""
    text = secret.value.get_secret_value().strip()
    if not text.startswith("{"):
        return text
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise Unavailable(f"secret {secret.name!r} starts with '{{' but is not valid JSON") from None
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token.strip():
        raise Unavailable(f"secret {secret.name!r} is a JSON object without a non-empty 'token' field")
    return token.strip()


class PatSource:
    """Tokens for an organisation from configuration or secrets; `last_secret(org)` names where the last one
    came from, so a 401 can invalidate exactly that secret."""

    def __init__(
        self,
        secrets: SecretsCache,
        *,
        token: SecretStr | None = None,
        secret_name: str | None = None,
        org_secret_names: Callable[[str], Sequence[str]] = lambda org: (),
    ) -> None:
        self._secrets = secrets
        self._token = token
        self._secret_name = secret_name
        self._org_secret_names = org_secret_names
        self._served_from: dict[str, str] = {}

    def names_for(self, org: str) -> list[str]:
        return [self._secret_name] if self._secret_name else list(self._org_secret_names(org))

    async def token_for(self, org: str) -> GitHubToken:
        if self._token is not None:
            return GitHubToken(self._token, kind="pat")
        names = self.names_for(org)
        try:
            secret = await self._secrets.first(names)
        except SecretNotFound as exc:
            raise NoCredentials(f"no GitHub token for organisation {org!r} ({exc.message})") from None
        self._served_from[org] = secret.name
        return GitHubToken(SecretStr(token_from_secret(secret)), expires_at=secret.expires_at, kind="pat")

    def invalidate(self, org: str) -> None:
        """The token served for `org` was rejected: read its secret again next time (it may have rotated)."""
        name = self._served_from.pop(org, None)
        if name is not None:
            self._secrets.invalidate(name)
