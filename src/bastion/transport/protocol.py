"""Protocol-level refusals, made consistent and audited.

Two gaps of the SDK's transport (mcp 2.3.0), closed right around it:

- A request whose `MCP-Protocol-Version` header names a handshake-era version is routed to the legacy path, which
  never looks at a 2026-07-28 `_meta` envelope in the body. The spec requires the two to agree; a disagreement is
  refused here with 400 and `-32020`, as the SDK does for modern requests.
- The SDK answers malformed JSON-RPC, header/body mismatches, unknown methods and unsupported versions with an
  HTTP error before any tool runs, so nothing would audit them. Any 4xx/5xx the SDK answers on /mcp is recorded
  here, with its JSON-RPC error code and message.

Only requests with a handshake-era header have their body parsed here (a few microseconds); modern requests pass
through untouched unless the SDK refuses them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from mcp_types import HEADER_MISMATCH
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.audit.event import AuditEvent, Outcome, caller_fields
from bastion.principal import Principal, RequestInfo
from bastion.transport.authn import PRINCIPAL_KEY
from bastion.transport.body import read_body, replay
from bastion.transport.edge import AUDITED_KEY, REQUEST_INFO_KEY, header

__all__ = ["ProtocolGuardMiddleware"]

_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_LEGACY = frozenset(HANDSHAKE_PROTOCOL_VERSIONS)
_ERROR_BODY_LIMIT = 4096  # enough for any JSON-RPC error the SDK writes; more is not buffered


def _envelope_version(body: bytes) -> str | None:
    """The 2026-07-28 `_meta` protocol version a JSON-RPC request carries, if it carries one."""
    try:
        message: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None  # the SDK answers malformed JSON itself
    if not isinstance(message, dict):
        return None
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    version = meta.get(_META_VERSION) if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def _request_id(body: bytes) -> str | int | None:
    try:
        message: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None
    identifier = message.get("id") if isinstance(message, dict) else None
    return identifier if isinstance(identifier, str | int) and not isinstance(identifier, bool) else None


def _jsonrpc_error(body: bytes) -> tuple[int | None, str | None]:
    try:
        answer: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (code if isinstance(code, int) else None), (str(message)[:300] if message is not None else None)


class ProtocolGuardMiddleware:
    """Wraps the SDK's streamable HTTP app (inside authentication, so refusals are attributed to the caller)."""

    def __init__(self, app: ASGIApp, *, record: Callable[[AuditEvent], Awaitable[None] | None]) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        version = header(scope, b"mcp-protocol-version")
        if version in _LEGACY and scope.get("method") == "POST":
            body = await read_body(receive)
            if body is None:
                return
            envelope = _envelope_version(body)
            if envelope is not None and envelope != version:
                await self._refuse_mismatch(scope, send, body, version, envelope, started)
                return
            receive = replay(body, receive)
        await self._watched(scope, receive, send, started)

    async def _refuse_mismatch(
        self, scope: Scope, send: Send, body: bytes, version: str, envelope: str, started: float
    ) -> None:
        message = (
            f"MCP-Protocol-Version header {version} does not match the request's _meta protocol version {envelope}"
        )
        answer = {"jsonrpc": "2.0", "id": _request_id(body), "error": {"code": HEADER_MISMATCH, "message": message}}
        payload = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        await self._audit(scope, 400, HEADER_MISMATCH, message, started)

    async def _watched(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        status = 0
        error_body = bytearray()

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and status >= 400 and len(error_body) < _ERROR_BODY_LIMIT:
                error_body.extend(message.get("body", b"")[: _ERROR_BODY_LIMIT - len(error_body)])
            await send(message)

        await self.app(scope, receive, watching_send)
        if status >= 400 and not scope.get(AUDITED_KEY):
            code, text = _jsonrpc_error(bytes(error_body))
            await self._audit(scope, status, code, text or f"HTTP {status} from the MCP transport", started)

    async def _audit(self, scope: Scope, status: int, code: int | None, reason: str, started: float) -> None:
        principal = scope.get(PRINCIPAL_KEY)
        info = scope.get(REQUEST_INFO_KEY)
        who = principal if isinstance(principal, Principal) else None
        where = info if isinstance(info, RequestInfo) else None
        outcome: Outcome = "error" if status >= 500 else "not_found" if status == 404 else "invalid_input"
        receipt = self.record(
            AuditEvent(
                **caller_fields(who, where),
                tool=(header(scope, b"mcp-name") or "")[:128] or None,
                decision="none",
                reason=reason,
                outcome=outcome,
                duration_ms=round((perf_counter() - started) * 1000, 3),
                metadata={
                    "layer": "protocol",
                    "http_status": status,
                    "jsonrpc_code": code,
                    "method": (header(scope, b"mcp-method") or scope.get("method") or "")[:64],
                },
            )
        )
        if receipt is not None:
            await receipt
