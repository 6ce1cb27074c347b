"""The audit record. One per tool call, denial, or authentication failure."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from bastion.entropy import random_bytes
from bastion.principal import Principal, RequestInfo

__all__ = ["AuditEvent", "Decision", "Outcome", "caller_fields"]

Decision = Literal["allow", "deny", "none"]
Outcome = Literal[
    "ok", "error", "denied", "invalid_input", "not_found", "unauthenticated", "rate_limited", "unavailable"
]


def _now() -> datetime:
    return datetime.now(UTC)


def _event_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: the Unix time in milliseconds, then 74 random bits. Time-ordered, so
    the sinks' unique index on `event_id` grows at its end instead of dirtying a random page per event (on a large
    audit database that was the SQLite sink's largest cost per event)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(random_bytes(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 4122 variant
    return f"{value:032x}"


class AuditEvent(BaseModel):
    """Who did what, to which repository, with what result. Never holds a credential or file content."""

    event_id: str = Field(default_factory=_event_id)
    time: datetime = Field(default_factory=_now)
    request_id: str | None = None
    subject: str | None = None
    groups: list[str] = Field(default_factory=list)
    auth_method: str | None = None
    credential_id: str | None = None
    client: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    tool: str | None = None
    repo: str | None = None
    ref: str | None = None
    resolved_sha: str | None = None
    paths: list[str] = Field(default_factory=list)
    bytes_returned: int = 0
    decision: Decision = "none"
    reason: str | None = None
    rule: str | None = None
    duration_ms: float = 0.0
    outcome: Outcome = "ok"
    metadata: dict[str, Any] = Field(default_factory=dict)
    # The hash chain, filled in by the spool's single writer (bastion.audit.chain); None until then.
    instance_id: str | None = None  # the server instance (data dir + spool slot) that recorded the event
    seq: int | None = None  # 1, 2, 3, ... per instance, without gaps
    prev_hash: str | None = None  # `hash` of the same instance's previous event (None for seq 1)
    hash: str | None = None  # "sha256:<hex>" or "hmac-sha256:<hex>" of the canonical JSON of everything else


def caller_fields(principal: Principal | None, info: RequestInfo | None) -> dict[str, Any]:
    """The fields of an event that say who called and from where (empty when a layer does not know)."""
    return {
        "request_id": info.request_id if info else None,
        "subject": principal.subject if principal else None,
        "groups": sorted(principal.groups) if principal else [],
        "auth_method": principal.auth_method if principal else None,
        "credential_id": principal.credential_id if principal else None,
        "source_ip": info.source_ip if info else None,
        "user_agent": info.user_agent if info else None,
    }
