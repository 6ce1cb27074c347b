"""One exception hierarchy for the whole request path.

Each error carries a message written for the person (or model) who has to act on it. The edge maps
them once: tool failures become `isError` tool results whose text starts with the error kind, HTTP
failures become a status with a JSON body `{"error": kind, "error_description": message}`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessDenied",
    "AmbiguousRef",
    "BastionError",
    "ConfigError",
    "InsufficientScope",
    "InvalidInput",
    "NotFound",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
]


class BastionError(Exception):
    """Base of every error this package raises on purpose."""

    kind: ClassVar[str] = "error"
    title: ClassVar[str] = "error"  # how the message is introduced to a person: "access denied: <reason>"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape sent to clients: never include secrets in `details`."""
        return {"error": self.kind, "message": self.message, **self.details}


class InvalidInput(BastionError):
    """The caller sent something malformed or dangerous (option-like ref, `..`, NUL, bad range)."""

    kind = "invalid_input"
    title = "invalid input"
    http_status = 400


class AmbiguousRef(InvalidInput):
    """A SHA prefix that more than one commit starts with: the caller must give more digits."""


class NotFound(BastionError):
    """A repository, ref or path that does not exist, or that the caller may not know exists."""

    kind = "not_found"
    title = "not found"
    http_status = 404


class AccessDenied(BastionError):
    """Policy said no. `reason` names the rule that denied, or says that no rule allows."""

    kind = "access_denied"
    title = "access denied"
    http_status = 403

    def __init__(self, reason: str, *, rule: str | None = None, audit_only: dict[str, str] | None = None) -> None:
        super().__init__(reason, reason=reason, rule=rule)
        self.reason = reason
        self.rule = rule
        # Facts for the audit record that the caller must not learn (never part of `details`, which is sent).
        self.audit_only: dict[str, str] = audit_only or {}


class Unauthenticated(BastionError):
    """No usable credential. `error` is the RFC 6750 error code for the WWW-Authenticate challenge."""

    kind = "unauthenticated"
    title = "unauthenticated"
    http_status = 401

    def __init__(self, message: str, *, error: str = "invalid_token") -> None:
        super().__init__(message)
        self.error = error


class InsufficientScope(Unauthenticated):
    """A valid token that lacks a required scope: 403 with `error="insufficient_scope"` (RFC 6750 §3.1)."""

    kind = "insufficient_scope"
    title = "insufficient scope"
    http_status = 403

    def __init__(self, message: str, *, required: list[str], subject: str | None = None) -> None:
        super().__init__(message, error="insufficient_scope")
        self.required = required
        self.subject = subject


class RateLimited(BastionError):
    """Too many calls; `retry_after` is whole seconds until the caller may try again."""

    kind = "rate_limited"
    title = "rate limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class Unavailable(BastionError):
    """A dependency (mirror, git, state store) is not usable right now; retrying later may work."""

    kind = "unavailable"
    title = "unavailable"
    http_status = 503


class ConfigError(BastionError):
    """The server refuses to start: configuration is missing or contradictory."""

    kind = "config_error"
    title = "configuration error"
    http_status = 500
