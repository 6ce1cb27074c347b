"""Realistic Lambda events for the handler tests: API Gateway REST (payload 1.0, multiValueHeaders, Cognito
authorizer claims), HTTP API (payload 2.0, base64 body, JWT authorizer claims) and Function URL events, plus the
MCP requests of both protocol eras."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

__all__ = [
    "HOST",
    "KINDS",
    "MODERN",
    "event",
    "initialize",
    "legacy_headers",
    "modern_headers",
    "response_json",
    "tool_call",
]

HOST = "mcp.example.com"
MODERN = "2026-07-28"
LEGACY = "2025-06-18"
KINDS = ("rest", "http", "url")


def modern_headers(token: str | None, name: str = "get_file_contents", method: str = "tools/call") -> dict[str, str]:
    headers = {
        "Host": HOST,
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
        "Mcp-Name": name,
        "User-Agent": "lambda-test/1.0",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def legacy_headers(token: str | None, *, handshake: bool = False) -> dict[str, str]:
    headers = {
        "Host": HOST,
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "User-Agent": "older-client/0.9",
    }
    if not handshake:
        headers["MCP-Protocol-Version"] = LEGACY
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def tool_call(name: str, arguments: dict[str, Any], *, modern: bool, id: int = 1) -> bytes:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if modern:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "lambda-test", "version": "1.0"},
        }
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).encode()


def initialize() -> bytes:
    params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "older-client", "version": "0.9"}}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).encode()


def _rest(
    body: bytes, headers: dict[str, str], source_ip: str, authorizer: dict[str, Any] | None, path: str, method: str
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "a1b2c3d4e5",
        "resourceId": "r1",
        "resourcePath": path,
        "httpMethod": method,
        "path": f"/dev{path}",
        "stage": "dev",
        "protocol": "HTTP/1.1",
        "domainName": HOST,
        "requestId": str(uuid.uuid4()),
        "requestTimeEpoch": 1_790_000_000_000,
        "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent"), "caller": None, "user": None},
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": context,
        "body": body.decode() if body else None,
        "isBase64Encoded": False,
    }


def _v2(
    body: bytes,
    headers: dict[str, str],
    source_ip: str,
    authorizer: dict[str, Any] | None,
    path: str,
    method: str,
    *,
    function_url: bool,
) -> dict[str, Any]:
    domain = "abcdefghij.lambda-url.eu-west-1.on.aws" if function_url else HOST
    context: dict[str, Any] = {
        "accountId": "123456789012" if not function_url else "anonymous",
        "apiId": "abcdefghij",
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("User-Agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default" if function_url else f"{method} {path}",
        "stage": "$default",
        "time": "21/Nov/2026:12:00:00 +0000",
        "timeEpoch": 1_790_000_000_000,
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": context["routeKey"],
        "rawPath": path,
        "rawQueryString": "",
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": context,
        "isBase64Encoded": True,
    }
    if body:
        event["body"] = base64.b64encode(body).decode()
    return event


def event(
    kind: str,
    body: bytes,
    headers: dict[str, str],
    *,
    source_ip: str = "198.51.100.7",
    claims: dict[str, Any] | None = None,
    scopes: list[str] | None = None,
    path: str = "/mcp",
    method: str = "POST",
) -> dict[str, Any]:
    """A `kind` ("rest", "http", "url") event; `claims` become the authorizer context that gateway would write."""
    if kind == "rest":
        # REST API Cognito authorizer: every claim value a string, lists joined with commas.
        flat = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in (claims or {}).items()}
        return _rest(body, headers, source_ip, {"claims": flat} if claims is not None else None, path, method)
    authorizer = None
    if claims is not None:
        # HTTP API JWT authorizer: lists written as "[a b]", scopes as a list.
        flat = {k: f"[{' '.join(v)}]" if isinstance(v, list) else str(v) for k, v in claims.items()}
        authorizer = {"jwt": {"claims": flat, "scopes": scopes}}
    return _v2(body, headers, source_ip, authorizer, path, method, function_url=kind == "url")


def response_json(response: dict[str, Any]) -> Any:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)
