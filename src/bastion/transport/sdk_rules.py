"""Rules of the MCP SDK (mcp 2.3) that bastion.transport.direct applies itself, restated where the SDK's own
function would log, or costs a Starlette Request per call; tests/transport/test_sdk_rules.py holds each to the
SDK's verdicts on the same inputs."""

from __future__ import annotations

from typing import get_args

from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent
from mcp_types import methods as protocol_methods
from pydantic import BaseModel

__all__ = ["accepts", "passes_transport_security", "surface_is_ours"]


def _allowed(value: str, allowed: list[str]) -> bool:
    return value in allowed or any(pattern.endswith(":*") and value.startswith(pattern[:-1]) for pattern in allowed)


def passes_transport_security(security: TransportSecuritySettings, headers: dict[str, str]) -> bool:
    """The SDK's transport-security check (Content-Type, and Host and Origin against DNS rebinding), without its
    warning: a request that fails it goes on to the SDK, which refuses it and logs that once."""
    if not headers.get("content-type", "").lower().startswith("application/json"):
        return False
    if not security.enable_dns_rebinding_protection:
        return True
    host, origin = headers.get("host"), headers.get("origin")
    return (
        bool(host)
        and _allowed(host or "", security.allowed_hosts)
        and (not origin or _allowed(origin, security.allowed_origins))
    )


def accepts(accept: str) -> tuple[bool, bool]:
    """(JSON, SSE) acceptable, by the SDK's reading of Accept (`check_accept_headers`: wildcards count)."""
    types = {media.split(";")[0].strip().lower() for media in accept.split(",")}
    anything = "*/*" in types
    return (
        anything or "application/json" in types or "application/*" in types,
        anything or "text/event-stream" in types or "text/*" in types,
    )


def _fields(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def surface_is_ours(version: str) -> bool:
    """Whether the SDK's surface serializer for tools/call at `version` can only hand back our result's own dump:
    its CallToolResult and TextContent have exactly the fields of the models our results are made of, neither of
    ours keeps extra fields, and our results hold nothing but text content (tools/results.py, tools/call.py)."""
    surface = protocol_methods.SERVER_RESULTS.get(("tools/call", version))
    members = {model.__name__: model for model in get_args(surface) or (surface,) if isinstance(model, type)}
    theirs = members.get("CallToolResult"), _content_model(members.get("CallToolResult"))
    ours = (CallToolResult, TextContent)
    return all(
        model is not None and _fields(model) == _fields(mine) and mine.model_config.get("extra") in (None, "ignore")
        for model, mine in zip(theirs, ours, strict=True)
    )


def _content_model(result: type[BaseModel] | None) -> type[BaseModel] | None:
    """The TextContent member of a CallToolResult model's content blocks."""
    if result is None:
        return None
    block = get_args(result.model_fields["content"].annotation)
    members = get_args(block[0]) if block else ()
    return next((model for model in members if getattr(model, "__name__", "") == "TextContent"), None)
