"""Pure-ASGI middleware at the outer edge: request id, real client address, body size limit.

Pure ASGI (not Starlette's BaseHTTPMiddleware) because it runs on every request: each layer here costs a
function call, not a task and a stream copy.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.audit.event import AuditEvent, Decision, Outcome, caller_fields
from bastion.entropy import random_bytes
from bastion.principal import RequestInfo

__all__ = [
    "AUDITED_KEY",
    "REQUEST_INFO_KEY",
    "SOURCE_IP_KEY",
    "EdgeMiddleware",
    "client_address",
    "layer_refusal",
    "named_tool",
    "send_json_error",
]

REQUEST_INFO_KEY = "bastion.request"
# Set in the ASGI scope once a request has its audit event, so an outer layer does not record a second one.
AUDITED_KEY = "bastion.audited"
# Set by a serverless adapter (API Gateway's requestContext.identity.sourceIp, via the Lambda handler): the
# platform's own record of the caller, never a header, so it outranks the socket peer and X-Forwarded-For.
SOURCE_IP_KEY = "bastion.source_ip"
# A client-supplied id is kept only if it is short and harmless, so it can be logged and echoed safely.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def client_address(scope: Scope, trusted_proxies: int) -> str | None:
    """The caller's address: the socket peer, or the X-Forwarded-For entry `trusted_proxies` hops from the right.

    Every proxy appends the address it received the request from, so only the rightmost `trusted_proxies`
    entries were written by proxies we trust; anything further left was written by the client and is ignored.
    An address a serverless adapter put under SOURCE_IP_KEY wins over both.
    """
    adapter_address = scope.get(SOURCE_IP_KEY)
    if isinstance(adapter_address, str) and adapter_address:
        return adapter_address
    peer = scope.get("client")
    peer_host: str | None = peer[0] if peer else None
    if trusted_proxies <= 0:
        return peer_host
    chain: list[str | None] = []
    for key, value in scope["headers"]:
        if key == b"x-forwarded-for":
            chain.extend(hop for part in value.decode("latin-1").split(",") if (hop := part.strip()))
    # The peer is the last hop even when unknown (a proxy on a unix socket): it is the nearest trusted proxy.
    chain.append(peer_host)
    index = len(chain) - 1 - trusted_proxies
    if index < 0:
        # Fewer hops than trusted proxies: the request did not come through all of them, so every entry may have
        # been written by the client itself. Only the socket peer is a fact.
        return peer_host
    return chain[index]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def send_json_error(
    send: Send, status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": error or "unauthenticated", "error_description": description}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def named_tool(scope: Scope) -> str | None:
    """The tool the Mcp-Name header names, for an audit record of a refused request: caller-supplied, so bounded."""
    return (header(scope, b"mcp-name") or "")[:128] or None


def layer_refusal(
    scope: Scope,
    info: RequestInfo | None,
    layer: str,
    decision: Decision,
    reason: str,
    outcome: Outcome,
    started: float,
) -> AuditEvent:
    """The audit event of a request an outer layer refused before its caller was known."""
    return AuditEvent(
        **caller_fields(None, info),
        tool=named_tool(scope),
        decision=decision,
        reason=reason,
        outcome=outcome,
        duration_ms=round((perf_counter() - started) * 1000, 3),
        metadata={"layer": layer, "method": scope.get("method"), "path": str(scope.get("path"))[:256]},
    )


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Assigns the request id, resolves the client address, and refuses bodies over `max_body_bytes` (recorded by
    `record`, before the 413 leaves, like every other refusal: the caller is not known yet)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        trusted_proxies: int,
        record: Callable[[AuditEvent], Awaitable[None] | None] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.trusted_proxies = trusted_proxies
        self.record = record

    async def _refuse(self, scope: Scope, send: Send, info: RequestInfo, started: float) -> None:
        description = f"request body over the {self.max_body_bytes}-byte limit"
        if self.record is not None and not scope.get(AUDITED_KEY):
            scope[AUDITED_KEY] = True
            event = layer_refusal(scope, info, "edge", "none", description, "invalid_input", started)
            receipt = self.record(event)
            if receipt is not None:
                await receipt  # in the durable audit spool before the 413 leaves
        await send_json_error(send, 413, "request_too_large", description)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        supplied = header(scope, b"x-request-id")
        request_id = supplied if supplied and _SAFE_REQUEST_ID.match(supplied) else random_bytes(16).hex()
        info = RequestInfo(
            request_id=request_id,
            source_ip=client_address(scope, self.trusted_proxies),
            user_agent=(header(scope, b"user-agent") or "")[:256] or None,
        )
        scope[REQUEST_INFO_KEY] = info

        request_id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), request_id_header]}
            await send(message)

        declared = header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._refuse(scope, send_with_id, info, started)
            return

        received = 0
        state: dict[str, bool] = {"started": False, "refused": False}

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Answer here, not where _BodyTooLarge is caught: an app in between (any Starlette app has a
                    # ServerErrorMiddleware) turns the exception into a 500 of its own on the way out.
                    if not state["started"]:
                        state["refused"] = True
                        await self._refuse(scope, send_with_id, info, started)
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            if state["refused"]:
                return  # the 413 is the response; whatever the app says after it is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send_with_id(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, tracking_send)
