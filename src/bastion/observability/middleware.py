"""Per-request observability at the HTTP edge: the request context for logs and audit, and the HTTP span.

Pure ASGI, right inside EdgeMiddleware (which makes the request id). Without tracing it costs one header scan and
a context variable set/reset per request; with tracing it also opens the server span, honours the caller's W3C
`traceparent` and answers with a `traceparent` of its own.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.observability import tracing
from bastion.observability.context import REQUEST_CONTEXT, RequestContext, parse_traceparent
from bastion.principal import RequestInfo
from bastion.transport.edge import REQUEST_INFO_KEY, header

__all__ = ["UNTRACED_PATHS", "ObservabilityMiddleware"]

# Probes and scrapes: logged with their request id like anything else, but no span (they would drown the traces).
UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics"})
# Span names use the path only when it is one of ours, so a scanner's random paths cannot mint new names.
_NAMED_PATHS = frozenset({"/mcp", "/webhooks/github", "/.well-known/oauth-protected-resource/mcp"})


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = scope.get(REQUEST_INFO_KEY)
        request_id = info.request_id if isinstance(info, RequestInfo) else None
        traceparent = header(scope, b"traceparent")
        active = tracing.tracer()
        if active is None or scope["path"] in UNTRACED_PATHS:
            token = REQUEST_CONTEXT.set(RequestContext(request_id, parse_traceparent(traceparent)))
            try:
                await self.app(scope, receive, send)
            finally:
                REQUEST_CONTEXT.reset(token)
            return
        await self._traced(active, scope, receive, send, request_id, traceparent)

    async def _traced(
        self, active: Any, scope: Scope, receive: Receive, send: Send, request_id: str | None, traceparent: str | None
    ) -> None:
        from opentelemetry.trace import SpanKind, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        propagator = TraceContextTextMapPropagator()
        carrier: dict[str, str] = {}
        if traceparent:
            carrier["traceparent"] = traceparent
            carrier["tracestate"] = header(scope, b"tracestate") or ""
        method = scope.get("method", "GET")
        path = scope["path"] if scope["path"] in _NAMED_PATHS else "other"
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": path}
        if request_id:
            attributes["bastion.request_id"] = request_id
        with active.start_as_current_span(
            f"HTTP {method} {path}", context=propagator.extract(carrier), kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            span_context = span.get_span_context()
            outgoing: dict[str, str] = {}
            propagator.inject(outgoing)
            response_header = (b"traceparent", outgoing["traceparent"].encode()) if "traceparent" in outgoing else None
            context = RequestContext(request_id, f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}")

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)
                    if response_header is not None:
                        message = {**message, "headers": [*message.get("headers", []), response_header]}
                await send(message)

            token = REQUEST_CONTEXT.set(context)
            try:
                await self.app(scope, receive, send_traced)
            finally:
                REQUEST_CONTEXT.reset(token)
