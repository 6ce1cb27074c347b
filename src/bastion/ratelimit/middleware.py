"""Rate limits on the request path: between authentication and the MCP SDK.

It has to sit before the SDK, because a refusal must be an HTTP 429 with `Retry-After`, and the SDK commits to
a 200 before a tool runs. It has to sit after authentication, because buckets belong to the principal's subject.

Which method and tool a request is comes from its JSON body, read here (it is small: the edge caps it) and then
replayed to the SDK byte for byte. Not from the `Mcp-Method` / `Mcp-Name` headers: the SDK checks them against
the body only for 2026-07-28 requests and picks the era from another header, so a legacy request could say
`Mcp-Method: tools/list` over a `tools/call` body and spend the wrong bucket. Parsing costs microseconds.

A refused request gets one answer whatever it was: HTTP 429, `Retry-After: N`, and a JSON-RPC error with code
`RATE_LIMITED_CODE` (an application code, outside the reserved -32768..-32000), `id` echoed from the request (null
for a notification or a body that is not one JSON-RPC request), and `data` = {retry_after, limit, scope}. Each
refusal is audited (outcome `rate_limited`, decision `deny`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.audit.event import AuditEvent, caller_fields
from bastion.observability.metrics import METRICS
from bastion.principal import Principal, RequestInfo
from bastion.ratelimit.limiter import RateLimiter, Refusal
from bastion.ratelimit.rules import RateLimitRules
from bastion.transport.authn import PRINCIPAL_KEY
from bastion.transport.body import decode_json, jsonrpc_id, read_body, replay
from bastion.transport.edge import REQUEST_INFO_KEY

__all__ = ["RATE_LIMITED_CODE", "JsonRpcCall", "RateLimitMiddleware", "parse_call", "refusal_body"]

RATE_LIMITED_CODE = -31429  # documented in docs/rate-limits.md; "429" so a person reading a log recognises it

RequestId = str | int


@dataclass(frozen=True, slots=True)
class JsonRpcCall:
    """What the limiter needs from a request body. All None for anything that is not one JSON-RPC message."""

    method: str | None = None
    tool: str | None = None
    request_id: RequestId | None = None


_NOT_JSONRPC = JsonRpcCall()


def parse_call(body: bytes, scope: Scope) -> JsonRpcCall:
    """The method, tool name (for tools/call) and id of a JSON-RPC request body."""
    if not body:
        return _NOT_JSONRPC
    decoded: Any = decode_json(scope, body)
    if not isinstance(decoded, dict):
        return _NOT_JSONRPC  # a batch, which the SDK refuses: it spends the protocol bucket like any other request
    message: dict[str, Any] = decoded
    method = message.get("method")
    if not isinstance(method, str):
        method = None
    request_id = jsonrpc_id(message)
    tool = None
    params = message.get("params")
    if method == "tools/call" and isinstance(params, dict):
        name = params.get("name")  # pyright: ignore[reportUnknownMemberType]
        tool = name if isinstance(name, str) else None
    return JsonRpcCall(method, tool, request_id)


def refusal_body(refusal: Refusal, request_id: RequestId | None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": RATE_LIMITED_CODE,
            "message": refusal.message,
            "data": {
                "retry_after": refusal.retry_after,
                "limit": refusal.bucket.limit.text,
                "scope": refusal.bucket.scope,
            },
        },
    }


class RateLimitMiddleware:
    """Spends the caller's buckets for each request; answers 429 when one of them is empty."""

    def __init__(
        self,
        app: ASGIApp,
        rules: RateLimitRules,
        limiter: RateLimiter,
        *,
        record: Callable[[AuditEvent], Awaitable[None] | None],
    ) -> None:
        self.app = app
        self.rules = rules
        self.limiter = limiter
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        call = _NOT_JSONRPC
        if scope.get("method") == "POST":
            body = await read_body(receive)
            if body is None:
                return  # nobody is waiting for an answer
            call = parse_call(body, scope)
            receive = replay(body, receive)
        principal = scope.get(PRINCIPAL_KEY)
        info = scope.get(REQUEST_INFO_KEY)
        info = info if isinstance(info, RequestInfo) else None
        if isinstance(principal, Principal):
            caller, groups = principal.subject, principal.groups
        else:
            # Only reachable when the app is assembled without authentication in front: key on the address.
            principal = None
            caller, groups = f"address:{info.source_ip if info else 'unknown'}", frozenset[str]()
        refusal = await self.limiter.acquire(self.rules.buckets(caller, groups, call.method, call.tool))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        METRICS.rate_limited(refusal.bucket.scope)
        await self._audit(refusal, call, principal, info, scope, started)
        await _send_refusal(send, refusal, call.request_id)

    async def _audit(
        self,
        refusal: Refusal,
        call: JsonRpcCall,
        principal: Principal | None,
        info: RequestInfo | None,
        scope: Scope,
        started: float,
    ) -> None:
        receipt = self.record(
            AuditEvent(
                **caller_fields(principal, info),
                tool=call.tool[:128] if call.tool else None,
                decision="deny",
                reason=refusal.message,
                outcome="rate_limited",
                duration_ms=round((perf_counter() - started) * 1000, 3),
                metadata={
                    "method": (call.method or scope.get("method") or "")[:64],
                    "scope": refusal.bucket.scope,
                    "limit": refusal.bucket.limit.text,
                    "retry_after": refusal.retry_after,
                },
            )
        )
        if receipt is not None:
            await receipt  # in the durable audit spool before the 429 leaves


async def _send_refusal(send: Send, refusal: Refusal, request_id: RequestId | None) -> None:
    body = json.dumps(refusal_body(refusal, request_id), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(refusal.retry_after).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
