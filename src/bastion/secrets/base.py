"""What a secret is, and the one interface every store implements."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import SecretStr

from bastion.errors import NotFound

__all__ = ["Secret", "SecretNotFound", "SecretsProvider", "stated_expiry"]


class SecretNotFound(NotFound):
    """The store answered, and it has no secret by that name (as opposed to Unavailable: it did not answer)."""


def stated_expiry(text: str) -> datetime | None:
    """The credential's own expiry when the secret states one: a JSON object with an ISO 8601 `expires_at`
    (seed 000 keeps tokens as `{"token": "..."}`; a rotation job may add when the token stops working)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    raw = data.get("expires_at") if isinstance(data, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Secret:
    """One secret as read from a store. `version` changes when the secret is rotated (Secrets Manager's
    VersionId, a file's identity); `expires_at` is the credential's own expiry when the secret states one."""

    name: str
    value: SecretStr
    version: str | None = None
    expires_at: datetime | None = None

    @classmethod
    def from_text(cls, name: str, text: str, version: str | None = None) -> Secret:
        return cls(name, SecretStr(text), version, stated_expiry(text))


class SecretsProvider(Protocol):
    """A store of secrets by name: raises SecretNotFound when it has none, Unavailable when it cannot answer."""

    def describe(self) -> str:
        """Where secrets come from, for messages ("AWS Secrets Manager (eu-west-1)")."""
        ...

    async def fetch(self, name: str) -> Secret:
        """Read the current value of `name` (never cached here: `SecretsCache` does that)."""
        ...
