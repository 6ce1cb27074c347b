"""Rate limits end to end: the real app under uvicorn, real API keys, the audit database, with the counters in
memory and in a real redis-server (the tests of limiting run against both)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from tests.ratelimit.harness import MODERN, jsonrpc, mcp_client, modern_headers, serve_bastion, tool_call
from tests.support.redis_server import redis_server

from bastion.config import RateLimitSettings, ServerSettings
from bastion.ratelimit import RATE_LIMITED_CODE

pytestmark = pytest.mark.anyio


def _limits(storage_url: str, **settings: Any) -> RateLimitSettings:
    return RateLimitSettings.model_validate({"storage_url": storage_url, "tools": {}, **settings})


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30) as client:
        yield client


async def test_a_limited_call_gets_429_with_retry_after_and_a_jsonrpc_error_saying_when(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    limits = _limits(storage_url, default="100/minute", tools={"search_code": "2/minute"})
    with serve_bastion(tmp_path, rate_limit=limits) as served:
        key = served.keys["alice"]
        for _ in range(2):
            allowed = await tool_call(http, served, key, "search_code", {"query": "TODO"})
            assert allowed.status_code == 200, allowed.text
            assert "result" in allowed.json(), "the replayed body reached the SDK and the tool ran"

        body = jsonrpc("tools/call", {"name": "search_code", "arguments": {"query": "TODO"}}, request_id="req-7")
        refused = await http.post(served.mcp_url, json=body, headers=modern_headers(key, "tools/call", "search_code"))
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/json"
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 60
        said = "rate limited: at most 2 calls to search_code per minute;"
        assert refused.json() == {
            "jsonrpc": "2.0",
            "id": "req-7",
            "error": {
                "code": RATE_LIMITED_CODE,
                "message": f"{said} retry after {retry_after} seconds",
                "data": {"retry_after": retry_after, "limit": "2/minute", "scope": "tool:search_code"},
            },
        }

        # Other tools are not affected by search_code's limit.
        other = await tool_call(http, served, key, "list_repositories")
        assert other.status_code == 200, other.text


async def test_each_refusal_is_audited_and_the_refused_call_never_reaches_the_tool(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    limits = _limits(storage_url, default="1/minute")
    with serve_bastion(tmp_path, rate_limit=limits) as served:
        key = served.keys["alice"]
        assert (await tool_call(http, served, key, "list_repositories")).status_code == 200
        refused = await tool_call(http, served, key, "list_repositories")
        assert refused.status_code == 429
        request_id = refused.headers["x-request-id"]
        retry_after = int(refused.headers["retry-after"])

        events = [event for event in await served.audit() if event.request_id == request_id]
        assert len(events) == 1, "exactly one event: the refusal (no tool ran, so no tool event)"
        (event,) = events
        assert (event.outcome, event.decision, event.tool, event.subject) == (
            "rate_limited",
            "deny",
            "list_repositories",
            "alice",
        )
        assert event.reason == f"rate limited: at most 1 tool calls per minute; retry after {retry_after} seconds"
        assert event.groups == ["eng"]
        assert event.auth_method == "api_key"
        assert event.credential_id is not None
        assert event.credential_id in key
        assert event.source_ip == "127.0.0.1"
        assert event.metadata == {
            "method": "tools/call",
            "scope": "caller",
            "limit": "1/minute",
            "retry_after": retry_after,
        }
        outcomes = [event.outcome for event in await served.audit(tool="list_repositories")]
        assert outcomes == ["ok", "rate_limited"]


@pytest.mark.parametrize("mode", [MODERN, "legacy"])
async def test_the_sdk_client_surfaces_the_refusal_as_an_error_with_the_retry_time(
    tmp_path: Path, storage_url: str, mode: str
) -> None:
    limits = _limits(storage_url, default="1/minute")
    with serve_bastion(tmp_path, rate_limit=limits) as served:
        async with mcp_client(served, served.keys["alice"], mode) as client:
            first = await client.call_tool("list_repositories", {})
            assert not first.is_error
            with pytest.raises(MCPError) as caught:
                await client.call_tool("list_repositories", {})
        error = caught.value.error
        assert error.code == RATE_LIMITED_CODE
        assert error.message.startswith("rate limited: at most 1 tool calls per minute; retry after ")
        assert isinstance(error.data, dict)
        assert error.data["scope"] == "caller"
        assert 1 <= error.data["retry_after"] <= 60


async def test_listing_and_discovery_never_spend_the_quota_meant_for_tool_calls(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    limits = _limits(storage_url, default="2/minute", protocol="100/minute")
    with serve_bastion(tmp_path, rate_limit=limits) as served:
        key = served.keys["alice"]
        for method in ("server/discover", "tools/list", "tools/list", "tools/list", "tools/list"):
            listed = await http.post(served.mcp_url, json=jsonrpc(method), headers=modern_headers(key, method))
            assert listed.status_code == 200, listed.text
        assert (await tool_call(http, served, key, "list_repositories")).status_code == 200
        assert (await tool_call(http, served, key, "list_repositories")).status_code == 200
        refused = await tool_call(http, served, key, "list_repositories")
        assert refused.status_code == 429
        assert refused.json()["error"]["data"]["scope"] == "caller"


async def test_a_flood_of_other_requests_is_bounded_by_its_own_bucket(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    limits = _limits(storage_url, default="100/minute", protocol="3/minute")
    with serve_bastion(tmp_path, rate_limit=limits) as served:
        key = served.keys["alice"]
        headers = modern_headers(key, "tools/list")
        for _ in range(3):
            assert (await http.post(served.mcp_url, json=jsonrpc("tools/list"), headers=headers)).status_code == 200
        refused = await http.post(served.mcp_url, json=jsonrpc("tools/list", request_id=41), headers=headers)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert refused.json()["id"] == 41
        assert error["message"].startswith("rate limited: at most 3 requests other than tool calls per minute; ")
        assert error["data"]["scope"] == "protocol"
        # A GET (legacy SSE stream) is "another request" too.
        get = await http.get(served.mcp_url, headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"})
        assert get.status_code == 429
        # Work goes on: tool calls have their own bucket.
        assert (await tool_call(http, served, key, "list_repositories")).status_code == 200


async def test_a_refused_notification_or_batch_is_answered_with_a_null_id(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    limits = _limits(storage_url, protocol="1/minute")
    with serve_bastion(tmp_path, rate_limit=limits) as served:
        key = served.keys["alice"]
        headers = modern_headers(key, "notifications/initialized")
        notification = jsonrpc("notifications/initialized")
        assert (await http.post(served.mcp_url, json=notification, headers=headers)).status_code == 202
        refused = await http.post(served.mcp_url, json=notification, headers=headers)
        assert refused.status_code == 429
        assert refused.json()["id"] is None
        assert refused.json()["error"]["code"] == RATE_LIMITED_CODE
        batch = [jsonrpc("tools/call", {"name": "list_repositories", "arguments": {}}) for _ in range(5)]
        refused = await http.post(served.mcp_url, json=batch, headers=modern_headers(key, "tools/call"))
        assert refused.status_code == 429, "a batch is one request of the protocol bucket (the SDK refuses batches)"
        assert refused.json()["id"] is None


async def test_the_body_decides_the_bucket_not_a_header_that_contradicts_it(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    """A legacy-era request (no MCP-Protocol-Version header) whose Mcp-Method header claims tools/list over a
    tools/call body: the SDK does not compare the two on that path, so the limiter must not trust the header."""
    limits = _limits(storage_url, default="100/minute", protocol="100/minute", tools={"search_code": "1/minute"})
    with serve_bastion(tmp_path, rate_limit=limits) as served:
        headers = {
            "Authorization": f"Bearer {served.keys['alice']}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "Mcp-Method": "tools/list",
        }
        body = {
            "jsonrpc": "2.0",
            "method": "tools/call",
            "params": {"name": "search_code", "arguments": {"query": "x"}},
        }
        await http.post(served.mcp_url, json={**body, "id": 1}, headers=headers)
        refused = await http.post(served.mcp_url, json={**body, "id": 2}, headers=headers)
        assert refused.status_code == 429
        assert refused.json()["error"]["data"]["scope"] == "tool:search_code"


async def test_the_most_generous_group_tier_replaces_the_default(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    limits = _limits(storage_url, default="1/minute", groups={"ci": "3/minute", "interns": "2/minute"})
    keys = (("alice", "alice", ("eng",)), ("bot", "ci-bot", ("ci", "interns")))
    with serve_bastion(tmp_path, rate_limit=limits, keys=keys) as served:
        for _ in range(3):
            assert (await tool_call(http, served, served.keys["bot"], "list_repositories")).status_code == 200
        refused = await tool_call(http, served, served.keys["bot"], "list_repositories")
        assert refused.status_code == 429
        assert refused.json()["error"]["data"] == {
            "retry_after": int(refused.headers["retry-after"]),
            "limit": "3/minute",
            "scope": "group:ci",
        }
        assert refused.json()["error"]["message"].startswith("rate limited: at most 3 tool calls (group ci) per minute")
        assert (await tool_call(http, served, served.keys["alice"], "list_repositories")).status_code == 200
        assert (await tool_call(http, served, served.keys["alice"], "list_repositories")).status_code == 429


async def test_an_oversized_body_still_gets_the_edges_413_when_the_limiter_reads_it(
    tmp_path: Path, http: httpx2.AsyncClient
) -> None:
    with serve_bastion(tmp_path, server=ServerSettings(max_body_bytes=2000)) as served:

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: only counting the stream can stop it
            yield b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_code","arguments":{"query":"'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}}}'

        response = await http.post(
            served.mcp_url, content=chunks(), headers=modern_headers(served.keys["alice"], "tools/call", "search_code")
        )
        assert response.status_code == 413
        assert response.json() == {
            "error": "request_too_large",
            "error_description": "request body over the 2000-byte limit",
        }


async def test_with_limits_disabled_nothing_is_counted(tmp_path: Path, http: httpx2.AsyncClient) -> None:
    limits = RateLimitSettings(enabled=False, default="1/minute", protocol="1/minute")
    with serve_bastion(tmp_path, rate_limit=limits) as served:
        assert served.app.state.rate_limiter is None
        for _ in range(3):
            assert (await tool_call(http, served, served.keys["alice"], "list_repositories")).status_code == 200


async def test_a_server_whose_redis_refuses_the_password_says_so_as_it_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path / "redis", password="s3cret") as redis:
        limits = _limits(redis.url.replace(":s3cret@", ":wrong@"), default="100/minute")
        with (
            caplog.at_level(logging.ERROR, logger="bastion.ratelimit.limiter"),
            serve_bastion(tmp_path, rate_limit=limits) as served,
        ):
            said = [record.getMessage() for record in caplog.records]  # before any request was made
            assert served.app.state.rate_limiter.degraded
    assert len(said) == 1
    assert "failed (AuthenticationError" in said[0]
    assert "limiting per instance until it answers again" in said[0]
    assert "wrong" not in said[0]
