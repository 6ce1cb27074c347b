"""The SDK's rules as bastion.transport.sdk_rules restates them give the SDK's verdicts (the whole path is compared
with the SDK's over HTTP in tests/e2e/test_direct_calls.py)."""

from __future__ import annotations

import itertools

import mcp_types
import pytest
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp_types import methods as protocol_methods
from starlette.requests import Request

from bastion.transport.sdk_rules import accepts, passes_transport_security, surface_is_ours

ACCEPTS = [
    "",
    "application/json",
    "application/json, text/event-stream",
    "text/event-stream",
    "*/*",
    "application/*",
    "text/*",
    "application/json;q=0.9, text/event-stream;q=0.1",
    " APPLICATION/JSON ",
    "application/jsonx",
    "text/html, application/xhtml+xml",
    "application/json,text/event-stream",
]


def _request(headers: list[tuple[str, str]]) -> Request:
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    return Request({"type": "http", "method": "POST", "path": "/mcp", "headers": raw})


@pytest.mark.parametrize("accept", ACCEPTS)
def test_accept_is_read_as_the_sdk_reads_it(accept: str) -> None:
    assert accepts(accept) == check_accept_headers(_request([("accept", accept)]))


SECURITY = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1:*", "localhost:*", "mcp.example.com"],
    allowed_origins=["http://127.0.0.1:*", "https://mcp.example.com"],
)
HOSTS = [
    None,
    "",
    "127.0.0.1:8000",
    "127.0.0.1",
    "127.0.0.1.evil.example:80",
    "localhost:1",
    "mcp.example.com",
    "mcp.example.com:443",
    "evil.example",
]
ORIGINS = [
    None,
    "",
    "http://127.0.0.1:3000",
    "http://127.0.0.1",
    "https://mcp.example.com",
    "http://evil.example",
    "http://127.0.0.1:3000.evil.example",
]
TYPES = [None, "application/json", "Application/JSON; charset=utf-8", "text/plain", "application/jsonp"]


@pytest.mark.anyio
@pytest.mark.parametrize("enabled", [True, False])
async def test_transport_security_gives_the_sdks_verdicts(enabled: bool) -> None:
    settings = SECURITY.model_copy(update={"enable_dns_rebinding_protection": enabled})
    sdk = TransportSecurityMiddleware(settings)
    checked = 0
    for host, origin, content_type in itertools.product(HOSTS, ORIGINS, TYPES):
        headers = [
            (name, value)
            for name, value in (("host", host), ("origin", origin), ("content-type", content_type))
            if value is not None
        ]
        expected = await sdk.validate_request(_request(headers), is_post=True) is None
        assert passes_transport_security(settings, dict(headers)) is expected, (host, origin, content_type)
        checked += 1
    assert checked == len(HOSTS) * len(ORIGINS) * len(TYPES)


def test_the_surface_serializer_is_skipped_only_where_it_could_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert surface_is_ours("2026-07-28")
    assert not surface_is_ours("2099-01-01")  # a version with no tools/call surface

    class CallToolResult(mcp_types.CallToolResult):  # a surface with a field our results do not have
        cost: int | None = None

    surface = {**protocol_methods.SERVER_RESULTS, ("tools/call", "2026-07-28"): CallToolResult}
    monkeypatch.setattr(protocol_methods, "SERVER_RESULTS", surface)
    assert not surface_is_ours("2026-07-28")
