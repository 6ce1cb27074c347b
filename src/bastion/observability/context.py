"""What the logs and the audit trail need to know about the request in progress: its id and its trace id.

Set once per HTTP request by `ObservabilityMiddleware` (just inside the edge, which makes the request id), read by
the JSON log formatter and by `run_tool`. A context variable, so every task and thread the request starts
(`asyncio.to_thread` copies the context) sees the same values, and nothing outside a request does.
"""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["REQUEST_CONTEXT", "RequestContext", "current", "parse_traceparent", "with_trace_id"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str | None
    trace_id: str | None = None  # 32 lowercase hex characters (W3C trace-context), or None
    span_id: str | None = None  # 16 lowercase hex characters: this server's span, when tracing records one


REQUEST_CONTEXT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "bastion_request_context", default=None
)

# W3C trace-context `traceparent`: version-traceid-parentid-flags. Version ff is invalid; all-zero ids are invalid.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def parse_traceparent(value: str | None) -> str | None:
    """The trace id of a valid `traceparent` header, else None (a malformed header is ignored, as the spec says)."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id


def current() -> RequestContext | None:
    return REQUEST_CONTEXT.get()


def with_trace_id(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` for an audit event, with the request's trace id added when there is one."""
    context = REQUEST_CONTEXT.get()
    if context is None or context.trace_id is None:
        return metadata
    return {**metadata, "trace_id": context.trace_id}
