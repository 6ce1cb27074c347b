"""Who is calling: the result of authentication, the input of policy, rate limits and audit."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["Principal", "RequestInfo"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `groups` drive policy; `credential_id` names the key or token, never its value."""

    subject: str
    groups: frozenset[str] = field(default_factory=frozenset[str])
    auth_method: str = "api_key"
    credential_id: str | None = None
    client: str | None = None

    def with_client(self, client: str | None) -> Principal:
        return self if client == self.client else replace(self, client=client)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Facts about the HTTP request a call arrived on, recorded in every audit event."""

    request_id: str
    source_ip: str | None = None
    user_agent: str | None = None
