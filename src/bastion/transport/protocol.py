"""Protocol-level refusals, made consistent and audited.

Two gaps of the SDK's transport (mcp 2.3.0), closed right around it:

- A request whose `MCP-Protocol-Version` header names a handshake-era version is routed to the legacy path, which
  never looks at a 2026-07-28 `_meta` envelope in the body. The spec requires the two to agree; a disagreement is
  refused here with 400 and `-32020`, as the SDK does for modern requests.
- The SDK answers malformed JSON-RPC, header/body mismatches, unknown methods and unsupported versions with an
  HTTP error before any tool runs, so nothing would audit them. Any 4xx/5xx the SDK answers on /mcp is recorded
  here, with its JSON-RPC error code and message.

Two of the SDK's refusals are made here instead, in words that say what is wrong:

- a version header this server does not speak (the SDK takes it for a 2026-07-28 request and complains about the
  body's `_meta`, or lists only 2026-07-28 as supported although the handshake versions are served too);
- a 2026-07-28 request without its `Mcp-Method` header (the SDK says the header "does not match" the body).

Only requests with a handshake-era header, or refused here, have their body parsed (a few microseconds); modern
requests pass through untouched unless the SDK refuses them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, cast

from mcp_types import HEADER_MISMATCH, UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.audit.event import AuditEvent, Outcome, caller_fields
from bastion.principal import Principal, RequestInfo
from bastion.transport.authn import PRINCIPAL_KEY
from bastion.transport.body import decode_json, jsonrpc_id, read_body, replay
from bastion.transport.edge import AUDITED_KEY, REQUEST_INFO_KEY, header, named_tool

__all__ = ["ProtocolGuardMiddleware"]

_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_LEGACY = frozenset(HANDSHAKE_PROTOCOL_VERSIONS)
_MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)
_MODERN_NEWEST_FIRST = sorted(MODERN_PROTOCOL_VERSIONS, reverse=True)
_LEGACY_NEWEST_FIRST = sorted(HANDSHAKE_PROTOCOL_VERSIONS, reverse=True)
_ERROR_BODY_LIMIT = 4096  # enough for any JSON-RPC error the SDK writes; more is not buffered


def _object(value: Any) -> dict[str, Any]:
    """A decoded JSON object; {} for anything else (the SDK answers malformed JSON)."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _request(scope: Scope, body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (decoded once per request: the rate limiter may have done it)."""
    return _object(decode_json(scope, body))


def _decoded(body: bytes) -> dict[str, Any]:
    """A response body as a JSON object."""
    try:
        return _object(json.loads(body))
    except (ValueError, RecursionError):
        return {}


def _envelope_version(message: dict[str, Any]) -> str | None:
    """The 2026-07-28 `_meta` protocol version a JSON-RPC request carries, if it carries one."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    version = meta.get(_META_VERSION) if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def _jsonrpc_error(answer: dict[str, Any]) -> tuple[int | None, str | None]:
    error = answer.get("error")
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
        if version is not None and scope.get("method") == "POST":
            if version in _MODERN:
                if header(scope, b"mcp-method") is None:
                    await self._refuse_missing_method(scope, receive, send, started)
                    return
            elif version in _LEGACY:
                body = await read_body(receive)
                if body is None:
                    return
                request = _request(scope, body)
                envelope = _envelope_version(request)
                if envelope is not None and envelope != version:
                    message = (
                        f"MCP-Protocol-Version header {version} does not match the request's _meta protocol version "
                        f"{envelope}"
                    )
                    await self._refuse(scope, send, jsonrpc_id(request), HEADER_MISMATCH, message, None, started)
                    return
                receive = replay(body, receive)
            else:
                await self._refuse_version(scope, receive, send, version, started)
                return
        await self._watched(scope, receive, send, started)

    async def _refuse_version(self, scope: Scope, receive: Receive, send: Send, version: str, started: float) -> None:
        body = await read_body(receive)
        if body is None:
            return
        message = (
            f"unsupported MCP-Protocol-Version {version[:64]!r}: this server speaks {', '.join(_MODERN_NEWEST_FIRST)} "
            f"(no handshake) and {', '.join(_LEGACY_NEWEST_FIRST)} (after initialize)"
        )
        data = {"supported": [*_MODERN_NEWEST_FIRST, *_LEGACY_NEWEST_FIRST], "requested": version[:64]}
        await self._refuse(
            scope, send, jsonrpc_id(_request(scope, body)), UNSUPPORTED_PROTOCOL_VERSION, message, data, started
        )

    async def _refuse_missing_method(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        body = await read_body(receive)
        if body is None:
            return
        request = _request(scope, body)
        request_id = jsonrpc_id(request)
        if request_id is None:  # a notification (or not JSON-RPC at all): the SDK's to answer
            await self._watched(scope, replay(body, receive), send, started)
            return
        method = request.get("method")
        named = f" (for this request: 'Mcp-Method: {method[:64]}')" if isinstance(method, str) and method else ""
        message = f"Mcp-Method header is missing: a 2026-07-28 request names its JSON-RPC method in it{named}"
        await self._refuse(scope, send, request_id, HEADER_MISMATCH, message, None, started)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        request_id: str | int | None,
        code: int,
        message: str,
        data: dict[str, Any] | None,
        started: float,
    ) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        payload = json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode()
        await self._audit(scope, 400, code, message, started)  # in the durable spool before the answer leaves
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _watched(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        """Run the SDK; an error it answers is audited before the answer leaves (held until then: it is small)."""
        status = 0
        error_body = bytearray()
        held: list[Message] | None = None
        audited = False

        async def audit_and_release() -> None:
            nonlocal held, audited
            pending, held = held or [], None
            audited = True
            code, text = _jsonrpc_error(_decoded(bytes(error_body)))
            await self._audit(scope, status, code, text or f"HTTP {status} from the MCP transport", started)
            for message in pending:
                await send(message)

        async def watching_send(message: Message) -> None:
            nonlocal status, held
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status >= 400 and not scope.get(AUDITED_KEY):
                    held = [message]
                    return
            elif message["type"] == "http.response.body" and held is not None:
                held.append(message)
                error_body.extend(message.get("body", b"")[: _ERROR_BODY_LIMIT - len(error_body)])
                if not message.get("more_body", False) or len(error_body) >= _ERROR_BODY_LIMIT:
                    await audit_and_release()
                return
            await send(message)

        await self.app(scope, receive, watching_send)
        if held is not None or (status >= 400 and not audited and not scope.get(AUDITED_KEY)):
            await audit_and_release()

    async def _audit(self, scope: Scope, status: int, code: int | None, reason: str, started: float) -> None:
        principal = scope.get(PRINCIPAL_KEY)
        info = scope.get(REQUEST_INFO_KEY)
        who = principal if isinstance(principal, Principal) else None
        where = info if isinstance(info, RequestInfo) else None
        outcome: Outcome = "error" if status >= 500 else "not_found" if status == 404 else "invalid_input"
        receipt = self.record(
            AuditEvent(
                **caller_fields(who, where),
                tool=named_tool(scope),
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
