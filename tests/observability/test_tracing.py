"""OpenTelemetry traces: W3C traceparent in and out, the HTTP and tool spans and their attributes, the trace id in
the audit event and in the logs; and the request context without tracing."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Generator, Sequence
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext
from tests.observability.helpers import OWNER, REPO, Deployment, call_tool, deployment

from bastion.audit.sink import AuditQuery
from bastion.audit.sqlite import SqliteAuditSink
from bastion.config import LogSettings, TracingSettings
from bastion.errors import ConfigError
from bastion.logs import configure_logging
from bastion.observability import tracing
from bastion.observability.context import parse_traceparent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
READ = {"owner": OWNER, "repo": REPO, "path": "README.md"}
FILE_TEXT = "A repository for the observability tests."


class _WhileActive(SpanProcessor):
    """Forwards finished spans while a test of this module runs. A tracer provider can be installed only once per
    process; later tests keep it, but nothing is collected for them."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.inner = SimpleSpanProcessor(exporter)
        self.active = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            self.inner.on_end(span)


_EXPORTER = InMemorySpanExporter()
_PROCESSOR = _WhileActive(_EXPORTER)


@pytest.fixture
def spans() -> Generator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if _PROCESSOR not in provider._active_span_processor._span_processors:
        provider.add_span_processor(_PROCESSOR)
    _EXPORTER.clear()
    _PROCESSOR.active = True
    try:
        yield _EXPORTER
    finally:
        _PROCESSOR.active = False
        _EXPORTER.clear()
        tracing.reset_tracing()


@pytest.fixture
def log_stream() -> Generator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging(LogSettings(level="INFO", json_format=True), stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved


def _audit(target: Deployment) -> list[dict[str, object]]:
    assert asyncio.run(_flush(target)), "the audit pipeline did not write within 10 s"
    sink = SqliteAuditSink(target.settings.audit_db)
    try:
        return [event.model_dump() for _, event in sink.query(AuditQuery(limit=1000))]
    finally:
        sink.close()


async def _flush(target: Deployment) -> bool:
    assert target.app is not None
    return await target.app.state.runtime.audit.flush(10)


def _ids(span: ReadableSpan) -> SpanContext:
    assert span.context is not None
    return span.context


def _named(found: Sequence[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [span for span in found if span.name.startswith(prefix)]


def test_traceparent_in_and_out_with_http_and_tool_spans(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    with deployment(tmp_path, tracing={"enabled": True}) as target:
        response = call_tool(target, target.keys["alice"], "get_file_contents", READ, traceparent=TRACEPARENT)
        events = _audit(target)
    assert response.status_code == 200
    assert FILE_TEXT in response.text
    finished = spans.get_finished_spans()
    (http,) = _named(finished, "HTTP POST /mcp")
    (tool,) = _named(finished, "bastion.tool get_file_contents")
    sdk = _named(finished, "tools/call get_file_contents")
    # One trace, the caller's: our server span is a child of the caller's span.
    assert f"{_ids(http).trace_id:032x}" == TRACE_ID
    assert http.parent is not None
    assert f"{http.parent.span_id:016x}" == PARENT_ID
    assert http.kind == trace.SpanKind.SERVER
    assert http.attributes is not None
    assert http.attributes["http.response.status_code"] == 200
    # The tool span sits inside the HTTP request (under the SDK's tools/call span).
    assert _ids(tool).trace_id == _ids(http).trace_id
    assert sdk
    assert tool.parent is not None
    assert tool.parent.span_id == _ids(sdk[0]).span_id
    assert sdk[0].parent is not None
    assert sdk[0].parent.span_id == _ids(http).span_id
    assert dict(tool.attributes or {}) == {
        "bastion.tool": "get_file_contents",
        "bastion.repository": f"{OWNER}/{REPO}",
        "bastion.outcome": "ok",
        "bastion.decision": "allow",
    }
    assert tool.start_time is not None
    assert tool.end_time is not None
    assert tool.end_time > tool.start_time
    for span in finished:  # never content, never arguments
        for attribute in (span.attributes or {}).values():
            assert FILE_TEXT not in str(attribute), span.name
            assert "README.md" not in str(attribute), span.name
    # The answer names this server's span in the caller's trace.
    assert response.headers["traceparent"] == f"00-{TRACE_ID}-{_ids(http).span_id:016x}-01"
    (event,) = [event for event in events if event["tool"] == "get_file_contents"]
    metadata = event["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["trace_id"] == TRACE_ID


def test_a_new_trace_when_the_caller_sends_none_and_errors_marked(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    with deployment(tmp_path, tracing={"enabled": True}) as target:
        denied = call_tool(target, target.keys["alice"], "get_file_contents", {**READ, "path": ".env"})
        unauthenticated = call_tool(target, None, "list_repositories", {})
    trace_id = parse_traceparent(denied.headers["traceparent"])
    assert trace_id is not None
    assert trace_id != TRACE_ID
    (tool,) = _named(spans.get_finished_spans(), "bastion.tool get_file_contents")
    assert f"{_ids(tool).trace_id:032x}" == trace_id
    assert tool.attributes is not None
    assert tool.attributes["bastion.outcome"] == "denied"
    # A request refused before the MCP layer still has its server span and its traceparent.
    assert parse_traceparent(unauthenticated.headers["traceparent"]) is not None
    statuses = [
        (span.attributes or {}).get("http.response.status_code") for span in _named(spans.get_finished_spans(), "HTTP")
    ]
    assert sorted(statuses) == [200, 401]  # type: ignore[type-var]


def test_logs_carry_the_trace_id_of_the_request(
    tmp_path: Path, spans: InMemorySpanExporter, log_stream: io.StringIO
) -> None:
    unknown_key = "bst_0123456789ab_" + "A" * 43  # well formed, never issued: the key check logs a line
    with deployment(tmp_path, tracing={"enabled": True}) as target:
        response = call_tool(target, unknown_key, "list_repositories", {}, traceparent=TRACEPARENT)
    assert response.status_code == 401
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.startswith("{")]
    (rejected,) = [line for line in lines if "API key rejected" in line["message"]]
    assert rejected["trace_id"] == TRACE_ID
    assert rejected["request_id"] == response.headers["x-request-id"]
    (http,) = _named(spans.get_finished_spans(), "HTTP POST /mcp")
    assert rejected["span_id"] == f"{_ids(http).span_id:016x}"


def test_without_tracing_the_callers_trace_id_still_reaches_logs_and_audit(
    tmp_path: Path, spans: InMemorySpanExporter, log_stream: io.StringIO
) -> None:
    with deployment(tmp_path) as target:  # tracing off (the default)
        response = call_tool(target, target.keys["alice"], "get_file_contents", READ, traceparent=TRACEPARENT)
        rejected = call_tool(target, "bst_0123456789ab_" + "B" * 43, "list_repositories", {}, traceparent=TRACEPARENT)
        events = _audit(target)
    assert response.status_code == 200
    assert rejected.status_code == 401
    assert "traceparent" not in response.headers  # no span of ours to name
    assert not _named(spans.get_finished_spans(), "bastion.tool")
    (event,) = [event for event in events if event["tool"] == "get_file_contents"]
    metadata = event["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["trace_id"] == TRACE_ID
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.startswith("{")]
    (logged,) = [line for line in lines if "API key rejected" in line["message"]]
    assert logged["trace_id"] == TRACE_ID
    assert "span_id" not in logged


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (TRACEPARENT, TRACE_ID),
        (f"  {TRACEPARENT}  ", TRACE_ID),
        (f"01-{TRACE_ID}-{PARENT_ID}-01-future-part", TRACE_ID),  # a later version may append fields
        (f"00-{TRACE_ID}-{PARENT_ID}-01-extra", None),  # version 00 may not
        (f"ff-{TRACE_ID}-{PARENT_ID}-01", None),
        (f"00-{'0' * 32}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", None),
        ("not a traceparent", None),
        (None, None),
    ],
)
def test_parse_traceparent(header: str | None, expected: str | None) -> None:
    assert parse_traceparent(header) == expected


def test_tracing_without_the_sdk_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # what an environment without the extra sees
    with pytest.raises(ConfigError, match=r"pip install 'mcp-bastion\[otel\]'"):
        tracing.configure_tracing(TracingSettings(enabled=True))
    assert tracing.configure_tracing(TracingSettings(enabled=False)) is False
    assert tracing.tracer() is None
