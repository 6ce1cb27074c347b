"""The whole server (real app, real API keys, real audit database) under uvicorn, with chosen limits, and the
two ways tests talk to it: raw JSON-RPC over httpx2 (to see status and headers) and the SDK's own client."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.types import ASGIApp
from tests.support.served import ServedBastion
from tests.support.server import serve_app

from bastion.app import create_app
from bastion.auth.keys import KeyStore
from bastion.config import AuthSettings, RateLimitSettings, ServerSettings, Settings
from bastion.demo import DEMO_POLICY
from bastion.store.db import open_state

__all__ = ["MODERN", "Served", "jsonrpc", "mcp_client", "serve_bastion", "tool_call"]

MODERN = "2026-07-28"
_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "ratelimit-tests", "version": "1"},
}
_ids = itertools.count(1)


@dataclass
class Served(ServedBastion):
    settings: Settings
    app: Starlette
    url: str
    keys: dict[str, str] = field(default_factory=dict[str, str])  # label -> plaintext API key


@contextlib.contextmanager
def serve_bastion(
    data_dir: Path,
    *,
    rate_limit: RateLimitSettings | None = None,
    server: ServerSettings | None = None,
    auth: AuthSettings | None = None,
    keys: Sequence[tuple[str, str, Sequence[str]]] = (("alice", "alice", ("eng",)),),
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
) -> Generator[Served]:
    """The demo policy (no repositories needed: tools answer from an empty registry), keys (label, subject,
    groups), and the app under uvicorn until the block ends. `wrap` puts something in front of the app (what a
    serverless adapter would do)."""
    settings = Settings(
        data_dir=data_dir,
        rate_limit=rate_limit or RateLimitSettings(),
        server=server or ServerSettings(),
        auth=auth or AuthSettings(),
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.policy_file.write_text(DEMO_POLICY)
    engine = open_state(settings)
    issued: dict[str, str] = {}
    try:
        store = KeyStore(engine)
        for label, subject, groups in keys:
            _, issued[label] = store.create(subject, groups=groups, description=f"ratelimit tests: {label}")
    finally:
        engine.dispose()
    app = create_app(settings)
    with serve_app(wrap(app) if wrap else app) as url:
        yield Served(settings=settings, app=app, url=url, keys=issued)


def jsonrpc(
    method: str, params: dict[str, Any] | None = None, *, request_id: int | str | None = None
) -> dict[str, Any]:
    """A 2026-07-28 request body (a notification when `request_id` is None and method starts 'notifications/')."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": {**(params or {}), "_meta": _META}}
    if not method.startswith("notifications/"):
        body["id"] = request_id if request_id is not None else next(_ids)
    return body


def modern_headers(key: str, method: str, name: str | None = None) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
    }
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


async def tool_call(
    http: httpx2.AsyncClient, served: Served, key: str, tool: str, arguments: dict[str, Any] | None = None
) -> httpx2.Response:
    """One modern tools/call over raw HTTP."""
    body = jsonrpc("tools/call", {"name": tool, "arguments": arguments or {}})
    return await http.post(served.mcp_url, json=body, headers=modern_headers(key, "tools/call", tool))


@contextlib.asynccontextmanager
async def mcp_client(served: Served, key: str, mode: str = MODERN) -> AsyncGenerator[Client]:
    """The SDK's own client over real HTTP (`mode`: a modern protocol version or "legacy")."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    async with http, Client(streamable_http_client(served.mcp_url, http_client=http), mode=mode) as client:
        yield client
