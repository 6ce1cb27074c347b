"""The MCP endpoint itself over real HTTP: both protocol eras (and the older 2025-06-18 handshake), malformed
JSON-RPC, MCP headers that disagree with the body, unknown tools and versions, and the unauthenticated health
endpoints (including /ready going 503 and back when a mirror breaks and is repaired)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from tests.e2e.helpers import (
    MODERN,
    Deployment,
    envelope,
    http_headers,
    mcp_client,
    modern_headers,
    rpc_message,
    snapshot,
    tool_call,
)

from bastion import __version__
from bastion.server import TOOL_NAMES

pytestmark = pytest.mark.anyio

# JSON-RPC 2.0 error codes, and the one the 2026-07-28 spec adds for MCP headers that disagree with the body.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
HEADER_MISMATCH = -32020
UNSUPPORTED_VERSION = -32022

README = {"owner": "acme", "repo": "handbook", "path": "README.md"}
SHA_FIELD = {"list_repositories": "head_sha", "list_branches": "sha", "list_tags": "sha"}


async def test_both_eras_list_the_ten_read_only_tools(deployment: Deployment, era: str) -> None:
    async with mcp_client(deployment, era) as client:
        version = client.protocol_version
        tools = (await client.list_tools()).tools
    assert version == (MODERN if era == MODERN else "2025-11-25")  # the SDK's legacy client negotiates 2025-11-25
    assert [tool.name for tool in tools] == list(TOOL_NAMES)
    for tool in tools:
        assert tool.annotations is not None
        assert (tool.annotations.read_only_hint, tool.annotations.destructive_hint) == (True, False), tool.name
        assert tool.output_schema is not None, tool.name
        # every answer names commits: the one read (resolved_sha), or each listed ref's / repository's head
        assert f'"{SHA_FIELD.get(tool.name, "resolved_sha")}"' in json.dumps(tool.output_schema), tool.name
        # call_tool refuses any other argument, and the schema says so
        assert tool.input_schema["additionalProperties"] is False, tool.name
        # descriptions are the docstrings without the source's indentation
        assert tool.description, tool.name
        assert not re.search(r"\n\s", tool.description), (tool.name, tool.description)


async def test_legacy_2025_06_18_handshake_and_call(deployment: Deployment) -> None:
    """The SDK's client always offers its newest handshake version (2025-11-25), so an older client is played
    with raw JSON-RPC: `initialize` with 2025-06-18, then a call carrying that version in its header."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "older-client", "version": "0.9"},
        },
    }
    key = deployment.keys["alice"]
    async with httpx2.AsyncClient(timeout=30) as http:
        hello = await http.post(deployment.mcp_url, json=initialize, headers=http_headers(key))
        called = await http.post(
            deployment.mcp_url,
            content=tool_call("get_file_contents", README, id=2),
            headers=http_headers(key, **{"MCP-Protocol-Version": "2025-06-18", "User-Agent": "older-client/0.9"}),
        )
    assert hello.status_code == 200, hello.text
    answer = rpc_message(hello)["result"]
    assert answer["protocolVersion"] == "2025-06-18"
    assert answer["serverInfo"]["name"] == "mcp-bastion"
    assert called.status_code == 200, called.text
    result = rpc_message(called)["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["resolved_sha"] == deployment.facts.handbook["main"]
    assert result["structuredContent"]["content"].startswith("# ACME handbook\n")
    [event] = await deployment.audit_for(called.headers["x-request-id"])
    # a stateless server keeps no handshake, so the client is named by its User-Agent
    assert (event.tool, event.client, event.outcome, event.resolved_sha) == (
        "get_file_contents",
        "older-client/0.9",
        "ok",
        deployment.facts.handbook["main"],
    )


# Malformed JSON-RPC. The SDK answers 400 with a JSON-RPC error whose id is null. A request with 2026-07-28
# headers gets the JSON-RPC codes (-32700 parse error, -32600 invalid request). One without them is taken for a
# legacy request, and the SDK's legacy path answers an invalid request with -32602 and its validation message
# instead of -32600: documented here as what the SDK (mcp 2.3.0) gives.
MALFORMED = {
    "invalid JSON": (b'{"jsonrpc": "2.0", "id": 1, "method": ', PARSE_ERROR, PARSE_ERROR, "Parse error"),
    "array of garbage": (b'[1, "x", {}, null]', INVALID_REQUEST, INVALID_PARAMS, "JSONRPCRequest"),
    "missing method": (b'{"jsonrpc": "2.0", "id": 7, "params": {}}', INVALID_REQUEST, INVALID_PARAMS, "method"),
    "wrong jsonrpc version": (
        b'{"jsonrpc": "1.0", "id": 7, "method": "tools/list", "params": {}}',
        INVALID_REQUEST,
        INVALID_PARAMS,
        "Input should be '2.0'",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
@pytest.mark.parametrize("shape", ["modern", "legacy"])
async def test_malformed_json_rpc_is_refused(deployment: Deployment, case: str, shape: str) -> None:
    body, modern_code, legacy_code, legacy_message = MALFORMED[case]
    key = deployment.keys["alice"]
    headers = modern_headers(key, method="tools/list") if shape == "modern" else http_headers(key)
    before = snapshot(deployment)
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(deployment.mcp_url, content=body, headers=headers)
    assert snapshot(deployment) == before
    assert response.status_code == 400, response.text
    message = response.json()
    assert message["jsonrpc"] == "2.0"
    assert message["id"] is None
    if shape == "modern":
        assert message["error"]["code"] == modern_code
        expected = "Parse error" if modern_code == PARSE_ERROR else "Body must be a single JSON-RPC request"
        assert message["error"]["message"].startswith(expected)
    else:
        assert message["error"]["code"] == legacy_code
        assert legacy_message in message["error"]["message"]


def _list_repositories(meta: dict[str, Any] | None = None) -> bytes:
    return tool_call("list_repositories", {}, meta=envelope() if meta is None else meta)


MISMATCHES = {
    "Mcp-Name names another tool": (
        {"Mcp-Name": "get_file_contents"},
        "mcp-name header does not match the request body's 'name' parameter",
    ),
    "Mcp-Name missing": ({"Mcp-Name": None}, "mcp-name header does not match the request body's 'name' parameter"),
    "Mcp-Method names another method": (
        {"Mcp-Method": "tools/list"},
        "mcp-method header does not match the request body's method",
    ),
    "Mcp-Method missing": (
        {"Mcp-Method": None},
        "Mcp-Method header is missing: a 2026-07-28 request names its JSON-RPC method in it "
        "(for this request: 'Mcp-Method: tools/call')",
    ),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
async def test_mcp_headers_that_disagree_with_the_body_are_refused(deployment: Deployment, case: str) -> None:
    change, expected = MISMATCHES[case]
    headers = modern_headers(deployment.keys["alice"], name="list_repositories")
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    before = snapshot(deployment)
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(deployment.mcp_url, content=_list_repositories(), headers=headers)
    assert snapshot(deployment) == before
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {"code": HEADER_MISMATCH, "message": expected}
    assert response.json()["id"] == 1


async def test_protocol_version_header_disagreeing_with_the_envelope_is_refused(deployment: Deployment) -> None:
    headers = modern_headers(deployment.keys["alice"], name="list_repositories")
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            deployment.mcp_url, content=_list_repositories(envelope(version="2025-11-25")), headers=headers
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": HEADER_MISMATCH,
        "message": "mcp-protocol-version header does not match the request envelope's protocol version",
    }


async def test_legacy_version_header_with_a_modern_envelope_is_refused(deployment: Deployment) -> None:
    """The SDK (mcp 2.3.0) routes a handshake-era header to its legacy path, which never reads the body's
    2026-07-28 envelope; our ProtocolGuardMiddleware refuses the disagreement as the spec asks, and audits it."""
    headers = modern_headers(deployment.keys["alice"], name="list_repositories")
    headers["MCP-Protocol-Version"] = "2025-06-18"
    headers["X-Request-Id"] = "e2e-legacy-header-modern-envelope"
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(deployment.mcp_url, content=_list_repositories(), headers=headers)
    assert response.status_code == 400, response.text
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {
            "code": HEADER_MISMATCH,
            "message": "MCP-Protocol-Version header 2025-06-18 does not match the request's _meta protocol "
            f"version {MODERN}",
        },
    }
    [event] = await deployment.audit_for("e2e-legacy-header-modern-envelope")
    assert (event.subject, event.outcome, event.decision) == ("alice", "invalid_input", "none")
    assert event.metadata["jsonrpc_code"] == HEADER_MISMATCH
    assert event.metadata["http_status"] == 400


async def test_transport_refusals_are_audited(deployment: Deployment) -> None:
    """What the SDK refuses before any tool runs (malformed JSON-RPC, header/body mismatch, unsupported version)
    is still one audit event each, attributed to the caller, with the JSON-RPC error."""
    key = deployment.keys["alice"]
    cases = {
        "e2e-audit-parse-error": (MALFORMED["invalid JSON"][0], modern_headers(key, method="tools/list"), PARSE_ERROR),
        "e2e-audit-mismatch": (
            _list_repositories(),
            {**modern_headers(key, name="list_repositories"), "Mcp-Name": "get_file_contents"},
            HEADER_MISMATCH,
        ),
        "e2e-audit-version": (
            _list_repositories(envelope(version="2099-01-01")),
            {**modern_headers(key, name="list_repositories"), "MCP-Protocol-Version": "2099-01-01"},
            UNSUPPORTED_VERSION,
        ),
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        for request_id, (body, headers, _) in cases.items():
            response = await http.post(
                deployment.mcp_url, content=body, headers={**headers, "X-Request-Id": request_id}
            )
            assert response.status_code == 400, response.text
    for request_id, (_, _, code) in cases.items():
        [event] = await deployment.audit_for(request_id)
        assert (event.subject, event.outcome, event.source_ip) == ("alice", "invalid_input", "127.0.0.1")
        assert event.metadata["layer"] == "protocol"
        assert event.metadata["jsonrpc_code"] == code
        assert event.reason, request_id


SUPPORTED = [MODERN, "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]


def _unsupported(version: str) -> dict[str, Any]:
    return {
        "code": UNSUPPORTED_VERSION,
        "message": f"unsupported MCP-Protocol-Version {version!r}: this server speaks {MODERN} (no handshake) and "
        "2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05 (after initialize)",
        "data": {"supported": SUPPORTED, "requested": version},
    }


async def test_unsupported_protocol_version(deployment: Deployment) -> None:
    """Named as the header's version, with every version served (the SDK alone lists only 2026-07-28, and for an
    `initialize` complains about the body's missing `_meta` instead)."""
    key = deployment.keys["alice"]
    headers = modern_headers(key, name="list_repositories")
    headers["MCP-Protocol-Version"] = "2099-01-01"
    initialize = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "initialize",
        "params": {"protocolVersion": "2024-01-01", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}},
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            deployment.mcp_url, content=_list_repositories(envelope(version="2099-01-01")), headers=headers
        )
        old = await http.post(
            deployment.mcp_url, json=initialize, headers=http_headers(key, **{"MCP-Protocol-Version": "2024-01-01"})
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == _unsupported("2099-01-01")
    assert old.status_code == 400, old.text
    assert old.json() == {"jsonrpc": "2.0", "id": 7, "error": _unsupported("2024-01-01")}


async def test_a_modern_notification_without_mcp_method_is_still_acknowledged(deployment: Deployment) -> None:
    """Only requests must carry Mcp-Method; the SDK acknowledges a notification POST with 202."""
    headers = modern_headers(deployment.keys["alice"], method="notifications/cancelled")
    del headers["Mcp-Method"]
    notification = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(deployment.mcp_url, json=notification, headers=headers)
    assert response.status_code == 202, response.text


async def test_unknown_tool_is_a_protocol_error(deployment: Deployment, era: str) -> None:
    """The spec makes an unknown tool -32602 (the SDK alone would answer isError); the call is still audited."""
    request_id = f"e2e-unknown-tool-{era}"
    async with mcp_client(deployment, era, headers={"X-Request-Id": request_id}) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("delete_repository", {"owner": "acme", "repo": "handbook"})
    assert raised.value.error.code == INVALID_PARAMS
    assert raised.value.error.message == "Unknown tool: 'delete_repository'; see tools/list"
    [event] = await deployment.audit_for(request_id)
    assert (event.tool, event.outcome, event.subject, event.reason) == (
        "delete_repository",
        "invalid_input",
        "alice",
        "Unknown tool: 'delete_repository'; see tools/list",
    )


@pytest.mark.parametrize(
    ("supplied", "echoed"),
    [("e2e-trace-0123:abc.def_9", True), ("not a safe id; <script>", False), ("x" * 65, False)],
)
async def test_request_id_is_echoed_when_safe_and_assigned_otherwise(
    deployment: Deployment, supplied: str, echoed: bool
) -> None:
    headers = {**modern_headers(deployment.keys["alice"], name="list_repositories"), "X-Request-Id": supplied}
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(deployment.mcp_url, content=_list_repositories(), headers=headers)
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    if echoed:
        assert request_id == supplied
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
    [event] = await deployment.audit_for(request_id)
    assert (event.tool, event.outcome) == ("list_repositories", "ok")


# -- health and readiness ------------------------------------------------------------------------------------


async def test_health_and_ready_answer_without_credentials(deployment: Deployment) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        health = await http.get(f"{deployment.url}/health")
        ready = await http.get(f"{deployment.url}/ready")
        mcp = await http.post(deployment.mcp_url, content=_list_repositories(), headers=modern_headers(None))
    assert (health.status_code, health.json()) == (200, {"status": "ok", "version": __version__})
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "checks": {"state_store": "ok", "policy": "ok", "mirrors": "ok"}},
    )
    assert mcp.status_code == 401  # only the health endpoints are open


async def test_oauth_discovery_is_404_on_a_server_that_takes_api_keys_only(deployment: Deployment) -> None:
    """Clients probe these before they hold a credential; a 401 would read as "OAuth required here"."""
    async with httpx2.AsyncClient(timeout=30) as http:
        for path in (
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ):
            response = await http.get(deployment.url + path)
            assert response.status_code == 404, (path, response.text)
            assert "www-authenticate" not in response.headers, path
            assert response.json() == {
                "error": "not_found",
                "error_description": "this server publishes no OAuth metadata: it takes API keys "
                "('Authorization: Bearer <key>', from 'bastion keys create')",
            }


async def test_ready_reports_a_broken_mirror_and_recovers(deployment: Deployment) -> None:
    mirror = deployment.settings.mirrors_dir / "acme" / "vault.git"
    moved = mirror.with_name("vault.git.moved-away")
    async with httpx2.AsyncClient(timeout=30) as http:
        mirror.rename(moved)
        try:
            broken = await http.get(f"{deployment.url}/ready")
        finally:
            moved.rename(mirror)
        repaired = await http.get(f"{deployment.url}/ready")
    assert broken.status_code == 503
    assert broken.json() == {
        "status": "not_ready",
        "checks": {
            "state_store": "ok",
            "policy": "ok",
            "mirrors": "acme/vault: the mirror of acme/vault is not ready: run `bastion repo sync acme/vault`",
        },
    }
    assert repaired.status_code == 200, repaired.text
    assert repaired.json()["status"] == "ready"
