"""End-to-end helpers: a deployment (the demo repositories behind a real smart-HTTP git remote, mirrored by a real
clone, the demo policy, real API keys, the whole ASGI app under uvicorn on 127.0.0.1) and the SDK's own client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Implementation
from starlette.applications import Starlette
from tests.support.gitrepo import git
from tests.support.served import ServedBastion
from tests.support.server import serve_app

from bastion.app import create_app
from bastion.audit.event import AuditEvent
from bastion.auth.keys import KeyStore
from bastion.config import Settings
from bastion.demo import DEMO_POLICY
from bastion.demo_repos import DEMO_REPOS
from bastion.repos.sync import add_repository
from bastion.store.db import api_keys, open_state, write_transaction

__all__ = [
    "CLIENT_INFO",
    "ENVELOPE_VERSION",
    "ERAS",
    "MODERN",
    "USER_AGENT",
    "DemoFacts",
    "Deployment",
    "Snapshot",
    "denial_text",
    "deploy",
    "envelope",
    "http_headers",
    "mcp_client",
    "modern_headers",
    "rev",
    "rpc_message",
    "show",
    "snapshot",
    "structured",
    "text_of",
    "tool_call",
    "tree_paths",
]

MODERN = "2026-07-28"
ERAS = (MODERN, "legacy")  # the two ways the SDK's own client talks to the server
CLIENT_INFO = Implementation(name="e2e-suite", version="1.2.3")
USER_AGENT = "e2e-agent/4.5"


def rev(git_dir: Path, spec: str) -> str:
    """The commit `spec` names in `git_dir`, asked of git (tests never hard-code SHAs)."""
    return git(git_dir, "rev-parse", "--verify", f"{spec}^{{commit}}")


@dataclass(frozen=True)
class DemoFacts:
    """SHAs of the served remotes, read with git when the deployment was built."""

    handbook: dict[str, str]  # ref or label -> SHA
    payments: dict[str, str]
    vault: dict[str, str]


def _facts(remotes: dict[str, Path]) -> DemoFacts:
    handbook, payments, vault = (remotes[name] for name in DEMO_REPOS)
    return DemoFacts(
        handbook={
            "main": rev(handbook, "main"),
            "dev": rev(handbook, "dev"),
            "feature/search-ranking": rev(handbook, "feature/search-ranking"),
            "v1.0": rev(handbook, "v1.0"),
            "v1.1": rev(handbook, "v1.1"),
            "first": rev(handbook, "main~2"),  # "Start the handbook": on main, not a tip
            "second": rev(handbook, "main~1"),  # "Add renderer, logo, style guide and local config"
        },
        payments={
            "main": rev(payments, "main"),
            "dev": rev(payments, "dev"),
            "release/2026.10": rev(payments, "release/2026.10"),
            "v2026.10.0": rev(payments, "v2026.10.0"),
            "first": rev(payments, "main~1"),
        },
        vault={"main": rev(vault, "main")},
    )


@dataclass
class Deployment(ServedBastion):
    """A running server and everything it was built from."""

    settings: Settings
    app: Starlette
    url: str  # http://127.0.0.1:PORT
    git_url: str  # base URL of this deployment's remotes
    remotes: dict[str, Path]  # repository name -> served bare repository
    facts: DemoFacts
    keys: dict[str, str] = field(default_factory=dict[str, str])  # label -> plaintext key
    key_ids: dict[str, str] = field(default_factory=dict[str, str])

    async def audit_for(self, request_id: str) -> list[AuditEvent]:
        return [event for event in await self.audit() if event.request_id == request_id]


def _expire(settings: Settings, key_id: str) -> None:
    """Move a key's expiry into the past, as time would: the store refuses to issue an already expired key."""
    engine = open_state(settings)
    try:
        with write_transaction(engine) as connection:
            connection.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id)
                .values(expires_at=datetime.now(UTC) - timedelta(hours=1))
            )
    finally:
        engine.dispose()


def _issue_keys(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    engine = open_state(settings)
    keys: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    try:
        store = KeyStore(engine)
        soon = datetime.now(UTC) + timedelta(days=1)
        for label, subject, groups in (
            ("alice", "alice", ("eng",)),
            ("revoked", "mallory", ("eng",)),
            ("expired", "eve", ("eng",)),
        ):
            record, key = store.create(subject, groups=groups, expires_at=soon, description=f"e2e {label}")
            keys[label], key_ids[label] = key, record.key_id
    finally:
        engine.dispose()
    _expire(settings, key_ids["expired"])
    return keys, key_ids


def _publish(origins: dict[str, Path], served: Path) -> dict[str, Path]:
    """Bare copies of the demo repositories under the git server's root (all branches and tags)."""
    remotes: dict[str, Path] = {}
    for name in DEMO_REPOS:
        bare = served / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "--bare", "--quiet", str(origins[name]), str(bare)], check=True, capture_output=True
        )
        git(bare, "config", "http.receivepack", "true")  # so tests can push over smart HTTP
        remotes[name] = bare
    return remotes


@contextlib.contextmanager
def deploy(base: Path, origins: dict[str, Path], git_root: Path, git_url: str) -> Generator[Deployment]:
    """Publish the demo repositories under `git_root/<base.name>/`, mirror them over smart HTTP into a fresh data
    directory, write the demo policy, issue keys and serve the app until the block ends."""
    prefix = base.name
    remotes = _publish(origins, git_root / prefix)
    # Rate limiting stays on (its middleware is on the path), with room for a whole suite's calls in a minute.
    generous = "100000/minute"
    settings = Settings.model_validate(
        {
            "data_dir": base / "data",
            "rate_limit": {"default": generous, "protocol": generous, "tools": {"search_code": generous}},
        }
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def mirror_all() -> None:
        for name in DEMO_REPOS:
            await add_repository(settings, f"{git_url}/{prefix}/{name}.git", name=name)

    asyncio.run(mirror_all())
    settings.policy_file.write_text(DEMO_POLICY)
    keys, key_ids = _issue_keys(settings)
    app = create_app(settings)
    with serve_app(app) as url:
        yield Deployment(
            settings=settings,
            app=app,
            url=url,
            git_url=f"{git_url}/{prefix}",
            remotes=remotes,
            facts=_facts(remotes),
            keys=keys,
            key_ids=key_ids,
        )


@contextlib.asynccontextmanager
async def mcp_client(
    deployment: Deployment, mode: str, *, key: str | None = None, headers: dict[str, str] | None = None
) -> AsyncGenerator[Client]:
    """The SDK's own client over real HTTP, in `mode` (a modern protocol version or "legacy")."""
    token = key if key is not None else deployment.keys["alice"]
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT, **(headers or {})}, timeout=30
    )
    async with (
        http,
        Client(streamable_http_client(deployment.mcp_url, http_client=http), mode=mode, client_info=CLIENT_INFO) as c,
    ):
        yield c


def text_of(result: CallToolResult) -> str:
    return "\n".join(str(getattr(block, "text", "")) for block in result.content)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, f"the call failed: {text_of(result)}"
    assert result.structured_content is not None, "no structured content"
    return result.structured_content


def denial_text(result: CallToolResult) -> str:
    """The text of an error result (asserting it is one)."""
    assert result.is_error, f"expected an error result, got: {text_of(result)[:300]}"
    return text_of(result)


def show(git_dir: Path, commit: str, path: str) -> bytes:
    """The bytes of `path` at `commit`, asked of git (no stripping: exact content)."""
    done = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], check=True, capture_output=True, timeout=30
    )
    return done.stdout


def tree_paths(git_dir: Path, commit: str, under: str = "") -> set[str]:
    """Every file and directory path in `commit` (below directory `under`), asked of git."""
    listing = git(git_dir, "ls-tree", "-r", "-t", "--name-only", commit)
    prefix = f"{under.rstrip('/')}/" if under else ""
    return {path for path in listing.splitlines() if path.startswith(prefix)}


# -- raw JSON-RPC over HTTP, for what the SDK client would never send ------------------------------------------

ENVELOPE_VERSION = "io.modelcontextprotocol/protocolVersion"


def envelope(version: str = MODERN, client: str = "raw-e2e") -> dict[str, Any]:
    """The `_meta` every 2026-07-28 request carries."""
    return {
        ENVELOPE_VERSION: version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": client, "version": "0.1"},
    }


def tool_call(name: str, arguments: dict[str, Any], *, meta: dict[str, Any] | None = None, id: int = 1) -> bytes:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).encode()


def http_headers(key: str | None, **extra: str) -> dict[str, str]:
    """Headers of a plain POST to /mcp (no MCP-specific ones); `extra` names use '_' for '-'."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    headers.update({name.replace("_", "-"): value for name, value in extra.items()})
    return headers


def modern_headers(key: str | None, method: str = "tools/call", name: str | None = None) -> dict[str, str]:
    """Headers a 2026-07-28 client sends with a request."""
    headers = http_headers(key, **{"MCP-Protocol-Version": MODERN, "Mcp-Method": method})
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


def rpc_message(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC message in a response, whether it came as plain JSON or as one SSE event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[len("data:") :].strip() for line in response.text.splitlines() if line.startswith("data:")]
        assert len(data) == 1, f"expected one SSE event, got: {response.text[:500]}"
        return json.loads(data[0])
    return response.json()


@dataclass(frozen=True)
class Snapshot:
    """What a refused request must not change: the files under the data directory (the audit store and state
    database aside: they record the refusal) and every ref of every mirror."""

    files: frozenset[str]
    refs: dict[str, str]


def snapshot(deployment: Deployment) -> Snapshot:
    data_dir = deployment.settings.data_dir
    files = frozenset(
        str(relative)
        for relative in (path.relative_to(data_dir) for path in data_dir.rglob("*"))
        if not relative.parts[0].startswith(("audit", "state.db"))  # audit.db*, audit-spool/, state.db*
    )
    refs: dict[str, str] = {}
    for name in DEMO_REPOS:
        mirror = data_dir / "mirrors" / f"{name}.git"
        for line in git(mirror, "for-each-ref", "--format=%(refname) %(objectname)").splitlines():
            ref, sha = line.split(" ")
            refs[f"{name}:{ref}"] = sha
    return Snapshot(files, refs)
