"""bastion.transport.direct answers a 2026-07-28 tools/call itself; here, over real HTTP, every such request is sent
twice, once answered by it and once by the SDK, and the two answers (status, content type, JSON-RPC message) and
the two audit records must be the same. Requests it must leave to the SDK are checked to reach the SDK with their
body intact, and SSE mode's keep-alive for a long call is checked too."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from starlette.types import ASGIApp
from tests.e2e.helpers import Deployment, envelope, modern_headers, rpc_message, tool_call

import bastion.server
from bastion.audit.event import AuditEvent
from bastion.transport import direct
from bastion.transport.direct import DirectToolCalls

pytestmark = pytest.mark.anyio

# Fields that differ between any two calls, whichever path answers them.
_PER_CALL = {"event_id", "time", "request_id", "duration_ms", "seq", "prev_hash", "hash", "metadata"}

ANSWERED_DIRECTLY: list[tuple[str, dict[str, Any]]] = [
    ("list_repositories", {}),
    ("list_branches", {"owner": "acme", "repo": "handbook"}),
    ("list_tags", {"owner": "acme", "repo": "payments", "per_page": 1}),
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": "README.md"}),
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": "README.md", "start_line": 2, "end_line": 3}),
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": "docs"}),
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": ".env"}),  # denied by a path rule
    ("get_file_contents", {"owner": "acme", "repo": "vault", "path": "README.md"}),  # no rule allows
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": "no/such/file"}),  # not found
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": "../etc/passwd"}),  # invalid input
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": "README.md", "ref": "--upload-pack=x"}),
    ("get_repository_tree", {"owner": "acme", "repo": "handbook", "recursive": False}),
    ("search_code", {"query": "payment", "max_results": 3}),
    ("list_commits", {"owner": "acme", "repo": "handbook", "per_page": 2}),
    ("get_commit", {"owner": "acme", "repo": "handbook", "sha": "main", "detail": "full_patch"}),
    ("compare_refs", {"owner": "acme", "repo": "handbook", "base": "v1.0", "head": "main"}),
    ("analyze_repository", {"owner": "acme", "repo": "handbook"}),
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": "README.md", "start_line": "2"}),  # as JSON
]

LEFT_TO_THE_SDK: list[tuple[str, dict[str, Any]]] = [
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": "README.md", "branch": "main"}),  # unknown
    ("get_file_contents", {"owner": "acme", "repo": "handbook", "path": "x" * 5000}),  # over max_length
    ("get_file_contents", {"owner": "acme"}),  # repo missing
    ("list_commits", {"owner": "acme", "repo": "handbook", "page": 0}),  # below the minimum
]


def _layer(app: ASGIApp) -> DirectToolCalls:
    """The DirectToolCalls inside the app's /mcp stack."""
    seen: Any = app
    for route in getattr(app, "routes", []):
        if getattr(route, "path", None) == "/mcp":
            seen = route.app
    for _ in range(20):
        if isinstance(seen, DirectToolCalls):
            return seen
        seen = getattr(seen, "app", None)
    raise AssertionError("no DirectToolCalls on /mcp")


class _Counted:
    """Counts the requests the direct layer answers itself."""

    def __init__(self, layer: DirectToolCalls) -> None:
        self.layer = layer
        self.answered = 0
        self.real: Callable[..., Awaitable[tuple[int, bytes]]] = layer._answer  # pyright: ignore[reportPrivateUsage]

    async def __call__(self, *args: Any) -> tuple[int, bytes]:
        self.answered += 1
        return await self.real(*args)


@contextlib.contextmanager
def _watched(deployment: Deployment, enabled: bool) -> Generator[_Counted]:
    layer = _layer(deployment.app)
    counted = _Counted(layer)
    was = layer.enabled
    layer.enabled = enabled
    layer._answer = counted  # pyright: ignore[reportPrivateUsage, reportAttributeAccessIssue]
    try:
        yield counted
    finally:
        layer.enabled = was
        del layer._answer  # pyright: ignore[reportPrivateUsage, reportAttributeAccessIssue]


@pytest.fixture(params=["sse", "json"])
def mode(deployment: Deployment, request: pytest.FixtureRequest) -> Generator[str]:
    """The shared deployment serves SSE mode (the default); "json" switches both paths to JSON-response mode, as
    `server.json_response` does, for the test's duration."""
    layer, manager = _layer(deployment.app), deployment.runtime.mcp.session_manager
    was = layer.json_response, manager.json_response
    layer.json_response = manager.json_response = request.param == "json"
    try:
        yield str(request.param)
    finally:
        layer.json_response, manager.json_response = was


async def _exchange(
    deployment: Deployment, body: bytes, headers: dict[str, str], request_id: str
) -> tuple[int, str, Any, list[AuditEvent]]:
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(deployment.mcp_url, content=body, headers={**headers, "X-Request-Id": request_id})
    json_answer = response.headers.get("content-type", "").startswith(("application/json", "text/event-stream"))
    message = rpc_message(response) if json_answer else response.text
    return (
        response.status_code,
        response.headers.get("content-type", ""),
        message,
        await deployment.audit_for(request_id),
    )


def _record(events: list[AuditEvent]) -> list[dict[str, Any]]:
    return [event.model_dump(exclude=_PER_CALL) for event in events]


async def _both(deployment: Deployment, name: str, body: bytes, headers: dict[str, str], label: str) -> int:
    """Sends `body` to the direct layer and to the SDK; asserts the same answers; returns how many the layer
    answered itself (0 or 1)."""
    with _watched(deployment, enabled=True) as counted:
        direct_answer = await _exchange(deployment, body, headers, f"direct-{label}")
    with _watched(deployment, enabled=False) as bypassed:
        sdk_answer = await _exchange(deployment, body, headers, f"sdk-{label}")
    assert bypassed.answered == 0
    status, content_type, message, events = direct_answer
    assert (status, content_type.split(";")[0], message) == (sdk_answer[0], sdk_answer[1].split(";")[0], sdk_answer[2])
    assert _record(events) == _record(sdk_answer[3]), name
    assert len(events) == (0 if status == 202 else 1), (name, events)  # a notification is acknowledged, not audited
    return counted.answered


@pytest.mark.parametrize(("name", "arguments"), ANSWERED_DIRECTLY)
async def test_a_direct_answer_is_the_sdks_answer(
    deployment: Deployment, mode: str, name: str, arguments: dict[str, Any]
) -> None:
    body = tool_call(name, arguments, meta=envelope())
    label = f"{mode}-{name}-{abs(hash(json.dumps(arguments, sort_keys=True)))}"
    assert await _both(deployment, name, body, modern_headers(deployment.keys["alice"], name=name), label) == 1


@pytest.mark.parametrize(("name", "arguments"), LEFT_TO_THE_SDK)
async def test_arguments_the_sdk_refuses_are_left_to_it(
    deployment: Deployment, name: str, arguments: dict[str, Any]
) -> None:
    body = tool_call(name, arguments, meta=envelope())
    label = f"refused-{name}-{len(json.dumps(arguments))}"
    assert await _both(deployment, name, body, modern_headers(deployment.keys["alice"], name=name), label) == 0


def _with_capabilities(call: dict[str, Any], capabilities: Any) -> bytes:
    meta = {**call["params"]["_meta"], "io.modelcontextprotocol/clientCapabilities": capabilities}
    return json.dumps({**call, "params": {**call["params"], "_meta": meta}}).encode()


def _shapes(key: str) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Unusual requests, with the headers they are sent with: the direct layer leaves most of them to the SDK."""
    name = "get_file_contents"
    arguments = {"owner": "acme", "repo": "handbook", "path": "README.md"}
    headers = modern_headers(key, name=name)
    call = json.loads(tool_call(name, arguments, meta=envelope()))
    no_client_info = json.loads(tool_call(name, arguments, meta=envelope()))
    del no_client_info["params"]["_meta"]["io.modelcontextprotocol/clientInfo"]
    return {
        "name header disagrees": (tool_call(name, arguments, meta=envelope()), modern_headers(key, name="list_tags")),
        "version header disagrees": (tool_call(name, arguments, meta=envelope("2099-01-01")), headers),
        "no _meta": (tool_call(name, arguments), headers),
        "not JSON": (b"{not json", headers),
        "a batch": (json.dumps([call]).encode(), headers),
        "id is a bool": (json.dumps({**call, "id": True}).encode(), headers),
        "an extra member": (json.dumps({**call, "extra": 1}).encode(), headers),
        "a notification": (json.dumps({k: v for k, v in call.items() if k != "id"}).encode(), headers),
        "Accept: JSON only": (json.dumps(call).encode(), {**headers, "Accept": "application/json"}),
        "an Mcp-Param header": (json.dumps(call).encode(), {**headers, "Mcp-Param-Owner": "acme"}),
        "requestState": (
            json.dumps({**call, "params": {**call["params"], "requestState": "forged"}}).encode(),
            headers,
        ),
        "a foreign Host": (json.dumps(call).encode(), {**headers, "Host": "evil.example"}),
        "a host prefix": (json.dumps(call).encode(), {**headers, "Host": "127.0.0.1.evil.example:80"}),
        "a foreign Origin": (json.dumps(call).encode(), {**headers, "Origin": "http://evil.example"}),
        "not JSON content": (json.dumps(call).encode(), {**headers, "Content-Type": "text/plain"}),
        "unknown tool": (tool_call("delete_repository", {}, meta=envelope()), modern_headers(key, name="nope")),
        "no clientInfo": (json.dumps(no_client_info).encode(), headers),
        "a 70-bit id": (json.dumps({**call, "id": 2**70}).encode(), headers),
        # capabilities the params' surface lets through but the SDK's connection refuses: the audit record then
        # names the User-Agent, not the clientInfo, on both paths (found by a probe)
        "odd capabilities": (_with_capabilities(call, {"tasks": 5}), headers),
        "odd roots": (_with_capabilities(call, {"roots": {"listChanged": "maybe"}}), headers),
        "a string id": (json.dumps({**call, "id": "call-7"}).encode(), headers),
    }


async def test_requests_the_layer_does_not_answer_reach_the_sdk_whole(deployment: Deployment, mode: str) -> None:
    answered_directly: dict[str, int] = {}
    for label, (body, headers) in _shapes(deployment.keys["alice"]).items():
        answered_directly[label] = await _both(
            deployment, "get_file_contents", body, headers, re.sub(r"[^A-Za-z0-9]+", "-", f"{mode} {label}")
        )
    # clientInfo is optional and an id may be any string or integer: the layer answers those; the rest is the SDK's.
    answered = ["no clientInfo", "a 70-bit id", "a string id", "odd capabilities", "odd roots"]
    if mode == "json":
        answered.append("Accept: JSON only")  # enough in JSON mode; SSE mode needs text/event-stream too
    assert answered_directly == {label: int(label in answered) for label in answered_directly}


async def test_sse_mode_keeps_a_long_call_alive_and_answers_in_one_event(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(direct, "KEEPALIVE_SECONDS", 0.05)
    backend = deployment.runtime.backend
    real_read = backend.read_blob

    async def slow_read(*args: Any, **kwargs: Any) -> Any:
        await anyio.sleep(0.3)
        return await real_read(*args, **kwargs)

    monkeypatch.setattr(backend, "read_blob", slow_read)
    arguments = {"owner": "acme", "repo": "handbook", "path": "README.md"}
    body = tool_call("get_file_contents", arguments, meta=envelope())
    with _watched(deployment, enabled=True) as counted:
        async with httpx2.AsyncClient(timeout=30) as http:
            response = await http.post(
                deployment.mcp_url,
                content=body,
                headers=modern_headers(deployment.keys["alice"], name="get_file_contents"),
            )
    assert counted.answered == 1
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.text.startswith(": ping\r\n\r\n")
    message = rpc_message(response)
    assert message["id"] == 1
    assert message["result"]["structuredContent"]["path"] == "README.md"
    assert message["result"]["resultType"] == "complete"
    assert message["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-bastion"


async def test_a_protocol_error_raised_by_a_tool_is_the_same_jsonrpc_error_on_both_paths(
    deployment: Deployment, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tool raises one today (run_tool turns every error into a result); if one did, both paths must answer
    with the JSON-RPC error and the status the SDK gives its code, not a tool result."""

    async def refuse(*args: Any) -> Any:
        raise MCPError(code=INVALID_PARAMS, message="the tool refused at the protocol level")

    monkeypatch.setattr(bastion.server, "run_tool", refuse)
    name, arguments = "list_repositories", {}
    body = tool_call(name, arguments, meta=envelope())
    label = f"{mode}-protocol-error"
    assert await _both(deployment, name, body, modern_headers(deployment.keys["alice"], name=name), label) == 1
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            deployment.mcp_url, content=body, headers=modern_headers(deployment.keys["alice"], name=name)
        )
    assert response.status_code == 400
    assert rpc_message(response)["error"] == {
        "code": INVALID_PARAMS,
        "message": "the tool refused at the protocol level",
    }
