"""OpenTelemetry traces, when the `otel` extra is installed and `tracing.enabled` is set.

Two spans of our own per tool call, plus the SDK's (the MCP SDK wraps every JSON-RPC message in a span whenever
a tracer provider is installed):

    HTTP POST /mcp              (server; from ObservabilityMiddleware; parent: the caller's `traceparent`)
      tools/call get_file_contents      (the MCP SDK's span)
        bastion.tool get_file_contents  (ours: tool, repository, outcome, decision; never content or arguments)

The response carries `traceparent` naming the HTTP span, so a caller can find its trace. Without the extra, or with
tracing off, `tracer()` is None and the request path pays one global read.
"""

from __future__ import annotations

import time
from typing import Any

from bastion import __version__
from bastion.config import TracingSettings
from bastion.errors import ConfigError

__all__ = ["configure_tracing", "record_tool_span", "reset_tracing", "tracer"]

_tracer: Any = None  # an opentelemetry Tracer while tracing is on


def tracer() -> Any:
    """The tracer, or None when tracing is off."""
    return _tracer


def configure_tracing(settings: TracingSettings) -> bool:
    """Install a tracer provider (once per process) and turn our spans on. An SDK provider installed before (by
    a test, or by `opentelemetry-instrument`) is used as it is. ConfigError when the SDK is missing."""
    global _tracer
    if not settings.enabled:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        raise ConfigError(
            "tracing.enabled needs the OpenTelemetry SDK: pip install 'mcp-bastion[otel]' "
            f"(or set BASTION_TRACING__ENABLED=false): {exc}",
            setting="tracing.enabled",
        ) from exc
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        exporter: SpanExporter
        if settings.exporter == "console":
            exporter = ConsoleSpanExporter()
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError as exc:
                raise ConfigError(
                    f"tracing.exporter=otlp needs opentelemetry-exporter-otlp-proto-http: pip install "
                    f"'mcp-bastion[otel]': {exc}",
                    setting="tracing.exporter",
                ) from exc
            exporter = (
                OTLPSpanExporter(endpoint=settings.otlp_endpoint) if settings.otlp_endpoint else OTLPSpanExporter()
            )
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name, "service.version": __version__}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("mcp-bastion", __version__)
    return True


def reset_tracing() -> None:
    """Turn our spans off again (a server with tracing off built after one with it on, in one process)."""
    global _tracer
    _tracer = None


def record_tool_span(tool: str, repository: str | None, outcome: str, decision: str, duration_seconds: float) -> None:
    """The tool call's span, made after the fact (one instrumentation point at the end of run_tool): it starts
    `duration_seconds` ago, under whatever span is current (the SDK's tools/call span)."""
    active = _tracer
    if active is None:
        return
    from opentelemetry.trace import SpanKind, StatusCode

    end = time.time_ns()
    attributes: dict[str, Any] = {"bastion.tool": tool, "bastion.outcome": outcome, "bastion.decision": decision}
    if repository is not None:
        attributes["bastion.repository"] = repository
    span = active.start_span(
        f"bastion.tool {tool}",
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        start_time=end - int(duration_seconds * 1e9),
    )
    if outcome in ("error", "unavailable"):
        span.set_status(StatusCode.ERROR, outcome)
    span.end(end_time=end)
