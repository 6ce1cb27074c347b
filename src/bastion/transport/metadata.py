"""RFC 9728 protected resource metadata: how a client learns which authorization server issues tokens for us.

An MCP client that gets a 401 reads `resource_metadata` from the challenge (or probes the well-known URLs), then
asks the authorization server listed here for a token whose audience is `resource`. Served without
authentication, at the root well-known URL and at the path-suffixed one RFC 9728 §3.1 derives from the resource
URL (`/.well-known/oauth-protected-resource/mcp`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from bastion.transport.edge import send_json_error

__all__ = [
    "WELL_KNOWN_PATH",
    "protected_resource_metadata",
    "protected_resource_routes",
    "resource_metadata_url",
    "unserved_well_known",
]

WELL_KNOWN_PATH = "/.well-known/oauth-protected-resource"
_CORS = {
    # Browser-based clients (MCP Inspector, web IDEs) read this cross-origin; it holds nothing secret.
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "mcp-protocol-version",
}


def resource_metadata_url(resource_url: str) -> str:
    """The metadata URL for `resource_url` (RFC 9728 §3.1: well-known segment between host and path)."""
    parts = urlsplit(resource_url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN_PATH}{path}"


def protected_resource_metadata(
    resource_url: str, issuer: str, scopes: list[str], resource_name: str = "mcp-bastion"
) -> dict[str, object]:
    metadata: dict[str, object] = {
        "resource": resource_url,
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": resource_name,
    }
    if scopes:
        metadata["scopes_supported"] = list(scopes)
    return metadata


def protected_resource_routes(
    resource_url: str, issuer: str, scopes: list[str], resource_name: str = "mcp-bastion"
) -> list[Route]:
    """Routes serving the metadata at the root well-known path, at `/mcp` under it, and under the resource
    URL's own path when that differs (a public URL such as https://host/prod/mcp behind a gateway stage)."""
    document = protected_resource_metadata(resource_url, issuer, scopes, resource_name)

    async def metadata(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_CORS)
        return JSONResponse(document, headers={**_CORS, "Cache-Control": "public, max-age=3600"})

    resource_path = urlsplit(resource_url).path.rstrip("/")
    paths = dict.fromkeys([WELL_KNOWN_PATH, f"{WELL_KNOWN_PATH}/mcp", f"{WELL_KNOWN_PATH}{resource_path}"])
    return [Route(path, metadata, methods=["GET", "OPTIONS"]) for path in paths]


def unserved_well_known(*, oauth: bool) -> Mount:
    """Every other `/.well-known/` path: 404 without authentication, saying what the server does publish.

    Clients probe these before they have a credential (RFC 9728, RFC 8414, OpenID discovery); a 401 there would
    read as "OAuth is required here" to a client that should simply send its API key."""
    if oauth:
        description = f"not published here; this server's OAuth metadata is at {WELL_KNOWN_PATH}"
    else:
        description = (
            "this server publishes no OAuth metadata: it takes API keys ('Authorization: Bearer <key>', from "
            "'bastion keys create')"
        )

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        await send_json_error(send, 404, "not_found", description)

    return Mount("/.well-known", app=not_found)
