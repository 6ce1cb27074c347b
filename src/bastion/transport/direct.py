"""A 2026-07-28 `tools/call` of one of our tools, answered without the SDK's per-request machinery.

The SDK serves a stateless request through a fresh runner, connection, middleware chain and `Context`, and
validates the request and its result against the protocol's surface models several times over: about 300 µs of
CPU per call on this machine, more than our whole governance (docs/benchmarks.md). This layer answers the one
request that matters for throughput, a modern `tools/call` of a governed tool, with the SDK's own parts:

- the request is checked by the SDK's inbound ladder (`classify_inbound_request`), its duplicate-header rule and
  its surface validation of `tools/call` params, and by the SDK's Accept and DNS-rebinding rules (restated in
  transport/sdk_rules.py without the warning the SDK logs when it refuses a request);
- the arguments are validated by the tool's own SDK model (`FuncMetadata.validate_arguments`), the registered
  tool function is called, and its result converted and checked against the output schema by the SDK
  (`FuncMetadata.convert_result`), unless it was built from that very model (`ShapedResult`);
- the result is shaped by the SDK's surface serializer (unless that version's surface models have exactly our
  models' fields, checked at start-up, so it could change nothing), gets `resultType` and the `serverInfo` stamp,
  as the SDK's runner does.

In SSE mode it keeps the SDK's behaviour too: a call that ends within 15 s is answered as plain JSON, a longer one
commits to an event stream with keep-alive pings.

Anything else is handed to the SDK untouched, with the body it came with: other methods, other eras, `Mcp-Param-*`
headers, multi-round-trip fields, a tool we do not govern, and every request that any of the checks above would
refuse (the SDK answers it, in its own words, and our layers audit it as before). With tracing on, calls go
through the SDK too, so its `tools/call` span stays in the trace. tests/e2e/test_direct_calls.py holds both paths
to the same answers and audit records.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import anyio
import orjson
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.server.runner import modern_error_data
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp_types import SERVER_INFO_META_KEY, CallToolResult, ClientCapabilities, Implementation, TextContent
from mcp_types import methods as protocol_methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.tools.call import DIRECT_CALLER, DirectCaller
from bastion.tools.results import ShapedResult
from bastion.transport.body import decode_json, jsonrpc_id, read_body, replay
from bastion.transport.sdk_rules import accepts, passes_transport_security, surface_is_ours

__all__ = ["DirectToolCalls"]

logger = logging.getLogger(__name__)

_MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)
_ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "method", "params"})
_MULTI_ROUND_FIELDS = ("requestState", "inputResponses")
_PARAM_HEADER_PREFIX = b"mcp-param-"
KEEPALIVE_SECONDS = 15.0  # the SDK's SSE deferral window and ping interval (mcp 2.3)
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


def _client_info(route: InboundModernRoute) -> Implementation | None:
    """The envelope's clientInfo as the SDK's connection keeps it (`Connection.from_envelope`): only when both it
    and the client capabilities pass the SDK's models, which are stricter than the params' surface validation."""
    if route.client_info is None:
        return None
    try:
        ClientCapabilities.model_validate(route.client_capabilities, by_name=False)
        return Implementation.model_validate(route.client_info, by_name=False)
    except ValidationError:
        return None


def _encode(answer: dict[str, Any]) -> bytes:
    """The SDK writes with json.dumps. orjson writes the same JSON (non-ASCII as UTF-8 rather than backslash-u escapes)
    several times faster: for a 10 KB file, about 40 µs of a call. It refuses integers beyond 64 bits."""
    try:
        return orjson.dumps(answer)
    except TypeError:
        return json.dumps(answer, separators=(",", ":")).encode()


async def _send_json(send: Send, answer: tuple[int, bytes]) -> None:
    status, payload = answer
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class _Call:
    """A request this layer answers: everything the SDK's checks let through, parsed once."""

    __slots__ = ("arguments", "request_id", "route", "tool")

    def __init__(self, request_id: str | int, route: InboundModernRoute, tool: Tool, arguments: dict[str, Any]):
        self.request_id = request_id
        self.route = route
        self.tool = tool
        self.arguments = arguments


class DirectToolCalls:
    """Wraps the SDK's transport app; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tools: dict[str, Tool],
        accepted: dict[str, frozenset[str]],
        server_info: Any,
        security: TransportSecuritySettings,
        json_response: bool,
        enabled: bool,
    ) -> None:
        self.app = app
        # Only tools the SDK would call exactly as we do: async, no resolvers, a Context parameter.
        self.tools = {
            name: tool
            for name, tool in tools.items()
            if tool.is_async and not tool.resolved_params and tool.context_kwarg is not None
        }
        self.accepted = accepted
        # The server's identity, stamped on every result. The SDK deep-copies it per response so that no handler
        # can change it; here the answer is encoded at once and nothing holds the dict, so one copy serves all.
        self.stamp = server_info.server_info_stamp
        self.plain_versions = frozenset(version for version in _MODERN if surface_is_ours(version))
        # What the SDK would hand the tool function. Ours take the caller from DIRECT_CALLER and never touch it.
        self.context: Context[Any, Any] = Context()
        self.security = security
        self.json_response = json_response
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or not self._candidate(scope):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return
        call = self._parse(scope, body)
        if call is None:
            await self.app(scope, replay(body, receive), send)
            return
        if self.json_response:
            await _send_json(send, await self._answer(scope, call))
        else:
            await self._stream(scope, receive, send, call)

    async def _stream(self, scope: Scope, receive: Receive, send: Send, call: _Call) -> None:
        """SSE mode, as the SDK does it: a plain JSON answer when the call ends within the keep-alive interval;
        otherwise commit to `text/event-stream`, ping until it ends, then send it as one event. The call is
        cancelled when the client goes away."""
        answer: list[tuple[int, bytes]] = []
        finished = anyio.Event()

        async def run() -> None:
            answer.append(await self._answer(scope, call))
            finished.set()

        async def watch_disconnect(cancel_scope: anyio.CancelScope) -> None:
            while (await receive()).get("type") != "http.disconnect":
                pass
            cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(run)
            group.start_soon(watch_disconnect, group.cancel_scope)
            with anyio.move_on_after(KEEPALIVE_SECONDS):
                await finished.wait()
            if finished.is_set():
                await _send_json(send, answer[0])
            else:
                await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
                while not finished.is_set():
                    await send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
                    with anyio.move_on_after(KEEPALIVE_SECONDS):
                        await finished.wait()
                frame = b"event: message\r\ndata: " + answer[0][1] + b"\r\n\r\n"
                await send({"type": "http.response.body", "body": frame, "more_body": False})
            group.cancel_scope.cancel()

    def _candidate(self, scope: Scope) -> bool:
        """From the headers alone: a modern tools/call POST naming one of our tools, without Mcp-Param headers."""
        if scope["type"] != "http" or scope.get("method") != "POST":
            return False
        version = method = name = None
        for key, value in scope["headers"]:
            if key == b"mcp-protocol-version":
                version = value
            elif key == b"mcp-method":
                method = value
            elif key == b"mcp-name":
                name = value
            elif key.startswith(_PARAM_HEADER_PREFIX):
                return False
        return (
            method == b"tools/call"
            and version is not None
            and version.decode("latin-1") in _MODERN
            and name is not None
            and name.decode("latin-1") in self.tools
        )

    def _parse(self, scope: Scope, body: bytes) -> _Call | None:
        """The call, or None for the SDK to answer (including every refusal)."""
        headers = [(key.decode("latin-1"), value.decode("latin-1")) for key, value in scope["headers"]]
        first: dict[str, str] = {}
        for key, value in headers:
            first.setdefault(key, value)  # a header given twice reads as its first value, as Starlette's get()
        has_json, has_sse = accepts(first.get("accept", ""))
        if not has_json or not (self.json_response or has_sse) or not passes_transport_security(self.security, first):
            return None
        decoded: Any = decode_json(scope, body)
        if not isinstance(decoded, dict) or not _ENVELOPE_KEYS.issuperset(cast(dict[str, Any], decoded)):
            return None
        message = cast(dict[str, Any], decoded)
        request_id, params = jsonrpc_id(message), message.get("params")
        if (
            message.get("jsonrpc") != "2.0"
            or message.get("method") != "tools/call"
            or request_id is None
            or not isinstance(params, dict)
        ):
            return None
        params = cast(dict[str, Any], params)
        if any(params.get(name) is not None for name in _MULTI_ROUND_FIELDS):
            return None
        if find_duplicated_routing_header(headers) is not None:
            return None
        route = classify_inbound_request(message, headers=dict(headers))
        if not isinstance(route, InboundModernRoute):
            return None
        try:  # the surface model of this version's tools/call params (name a string, arguments an object or null)
            protocol_methods.validate_client_request("tools/call", route.protocol_version, params)
        except (ValidationError, ValueError, KeyError):
            return None
        name, arguments = params.get("name"), params.get("arguments") or {}
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None or not isinstance(arguments, dict) or not self.accepted[tool.name].issuperset(arguments):
            return None
        arguments = cast(dict[str, Any], arguments)
        try:
            validated = tool.fn_metadata.validate_arguments(arguments)
        except Exception:  # the SDK's refusal (or its crash report) is the answer
            return None
        return _Call(request_id, route, tool, validated)

    async def _answer(self, scope: Scope, call: _Call) -> tuple[int, bytes]:
        """The HTTP status and JSON-RPC response, shaped as the SDK's runner shapes a tools/call result."""
        route = call.route
        token = DIRECT_CALLER.set(DirectCaller(scope, _client_info(route)))
        try:
            kwargs = {**call.arguments, cast(str, call.tool.context_kwarg): self.context}
            result = await call.tool.fn(**kwargs)
            if not (isinstance(result, ShapedResult) and result.shape() is call.tool.fn_metadata.output_model):
                result = call.tool.fn_metadata.convert_result(result)  # the SDK's check of the output schema
        except MCPError as exc:
            # A protocol error raised by the tool is a JSON-RPC error, with the status the SDK gives its code.
            error = modern_error_data(exc)
            wire = error.model_dump(by_alias=True, mode="json", exclude_none=True)
            status = ERROR_CODE_HTTP_STATUS.get(error.code, 200)
            return status, _encode({"jsonrpc": "2.0", "id": call.request_id, "error": wire})
        except Exception:
            # What the SDK answers for a tool that crashed: no detail on the wire, the traceback in the log.
            logger.exception("Tool %r raised an unexpected exception", call.tool.name)
            text = f"Error executing tool {call.tool.name}"
            result = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        finally:
            DIRECT_CALLER.reset(token)
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        if route.protocol_version not in self.plain_versions:
            dumped = protocol_methods.serialize_server_result("tools/call", route.protocol_version, dumped)
        if dumped.get("resultType") is None:
            dumped["resultType"] = "complete"
        meta = dumped.get("_meta")
        if not isinstance(meta, dict):
            dumped["_meta"] = {SERVER_INFO_META_KEY: self.stamp}
        elif cast(dict[str, Any], meta).get(SERVER_INFO_META_KEY) is None:
            dumped["_meta"] = {**cast(dict[str, Any], meta), SERVER_INFO_META_KEY: self.stamp}
        return 200, _encode({"jsonrpc": "2.0", "id": call.request_id, "result": dumped})
