"""Every call and every refusal reaches the audit store with the fields an investigator needs, and
`bastion audit tail` shows them. The calls are made here over real HTTP (both eras, plus raw requests whose
request id the server chose), then read back from the SQLite audit database and through the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from tests.e2e.helpers import (
    CLIENT_INFO,
    MODERN,
    USER_AGENT,
    Deployment,
    envelope,
    mcp_client,
    modern_headers,
    show,
    tool_call,
)
from typer.testing import CliRunner

from bastion.audit.event import AuditEvent
from bastion.audit.render import render_line
from bastion.cli.main import app

pytestmark = pytest.mark.anyio

HANDBOOK = {"owner": "acme", "repo": "handbook"}
MODERN_CLIENT = f"{CLIENT_INFO.name}/{CLIENT_INFO.version}"


def _one(events: list[AuditEvent], tool: str) -> AuditEvent:
    [event] = [e for e in events if e.tool == tool]
    return event


async def _make_calls(deployment: Deployment) -> dict[str, str]:
    """One of each kind of call; returns label -> request id."""
    ids = {era: f"e2e-audit-{era}" for era in (MODERN, "legacy")}
    for era, request_id in ids.items():
        async with mcp_client(deployment, era, headers={"X-Request-Id": request_id}) as client:
            assert not (await client.call_tool("get_file_contents", {**HANDBOOK, "path": "README.md"})).is_error
            assert (await client.call_tool("get_file_contents", {**HANDBOOK, "path": "config/.env"})).is_error
            assert (await client.call_tool("list_branches", {"owner": "acme", "repo": "vault"})).is_error
            bad = {**HANDBOOK, "path": "README.md", "ref": "--upload-pack=x"}
            assert (await client.call_tool("get_file_contents", bad)).is_error
            with pytest.raises(MCPError):
                await client.call_tool("drop_tables", {})
    async with httpx2.AsyncClient(timeout=30) as http:
        allowed = await http.post(
            deployment.mcp_url,
            content=tool_call("list_commits", {**HANDBOOK, "per_page": 2}, meta=envelope()),
            headers={**modern_headers(deployment.keys["alice"], name="list_commits"), "User-Agent": USER_AGENT},
        )
        anonymous = await http.post(
            deployment.mcp_url,
            content=tool_call("search_code", {"query": "x"}, meta=envelope()),
            headers={**modern_headers(None, name="search_code"), "User-Agent": USER_AGENT},
        )
    assert (allowed.status_code, anonymous.status_code) == (200, 401)
    return {**ids, "raw": allowed.headers["x-request-id"], "anonymous": anonymous.headers["x-request-id"]}


async def test_calls_and_refusals_are_audited_with_every_field(deployment: Deployment) -> None:
    started = datetime.now(UTC)
    ids = await _make_calls(deployment)
    main = deployment.facts.handbook["main"]
    readme_size = len(show(deployment.remotes["acme/handbook"], main, "README.md"))
    alice_key = deployment.key_ids["alice"]

    for era, client_name in ((MODERN, MODERN_CLIENT), ("legacy", USER_AGENT)):
        events = await deployment.audit_for(ids[era])
        assert [(e.tool, e.outcome) for e in events] == [
            ("get_file_contents", "ok"),
            ("get_file_contents", "denied"),
            ("list_branches", "denied"),
            ("get_file_contents", "invalid_input"),
            ("drop_tables", "invalid_input"),
        ], era
        allowed, secret, vault, bad, unknown = events
        for event in events:
            assert started - timedelta(seconds=1) <= event.time <= datetime.now(UTC), era
            assert (event.request_id, event.subject, event.groups, event.auth_method, event.credential_id) == (
                ids[era],
                "alice",
                ["eng"],
                "api_key",
                alice_key,
            )
            assert (event.source_ip, event.user_agent) == ("127.0.0.1", USER_AGENT)
            assert event.duration_ms > 0
        # the client is the MCP clientInfo on modern requests; a stateless server only has the User-Agent for
        # legacy ones (the handshake that named the client was an earlier request)
        for event in (allowed, secret, vault, bad):
            assert event.client == client_name, (era, event.tool)

        assert (allowed.repo, allowed.ref, allowed.resolved_sha, allowed.paths) == (
            "acme/handbook",
            "main",
            main,
            ["README.md"],
        )
        assert (allowed.bytes_returned, allowed.decision, allowed.rule) == (readme_size, "allow", "handbook-open")
        assert allowed.reason == "allowed by rule 'handbook-open'"

        assert (secret.decision, secret.repo, secret.resolved_sha, secret.paths, secret.bytes_returned) == (
            "deny",
            "acme/handbook",
            main,
            ["config/.env"],
            0,
        )
        assert secret.reason == "path 'config/.env' is denied by the default deny list (pattern '.env')"

        assert (vault.decision, vault.rule, vault.repo) == ("deny", "vault-locked", "acme/vault")
        assert vault.reason is not None
        assert vault.reason.startswith("denied by rule 'vault-locked': Production credentials are never readable")

        assert (bad.decision, bad.ref, bad.resolved_sha) == ("allow", "--upload-pack=x", None)
        assert bad.reason == "ref '--upload-pack=x' starts with '-' (looks like a command-line option)"

        assert (unknown.decision, unknown.reason) == ("none", "Unknown tool: 'drop_tables'; see tools/list")

    [raw] = await deployment.audit_for(ids["raw"])  # the id the server chose is the one in the response header
    assert (raw.tool, raw.outcome, raw.client, raw.resolved_sha, raw.subject) == (
        "list_commits",
        "ok",
        "raw-e2e/0.1",
        main,
        "alice",
    )
    [anonymous] = await deployment.audit_for(ids["anonymous"])
    assert (anonymous.tool, anonymous.decision, anonymous.outcome, anonymous.subject, anonymous.groups) == (
        "search_code",
        "deny",
        "unauthenticated",
        None,
        [],
    )
    assert anonymous.reason == "missing Authorization header: send 'Authorization: Bearer <key>'"
    assert (anonymous.source_ip, anonymous.user_agent) == ("127.0.0.1", USER_AGENT)


async def test_unknown_tool_audit_names_the_client(deployment: Deployment) -> None:
    """Calls the SDK answers before a tool body runs (unknown tool, arguments failing the schema) are recorded by
    `AuditEveryCall._record` in src/bastion/server.py; the record must name the client like every other one."""
    async with mcp_client(deployment, MODERN, headers={"X-Request-Id": "e2e-audit-unknown-client"}) as client:
        with pytest.raises(MCPError):
            await client.call_tool("drop_tables", {})
    [event] = await deployment.audit_for("e2e-audit-unknown-client")
    assert event.client == MODERN_CLIENT


async def test_every_record_in_the_store_is_complete(deployment: Deployment) -> None:
    """Whatever ran before in this session (the other e2e files too): every record names its request, where it
    came from, what it touched and how it ended."""
    await _make_calls(deployment)
    events = await deployment.audit()
    assert len(events) >= 12
    for event in events:
        described = render_line(event)
        assert event.request_id, described
        assert (event.source_ip, event.user_agent) != (None, None), described
        assert event.source_ip == "127.0.0.1", described
        assert event.duration_ms >= 0, described
        if event.outcome == "unauthenticated":
            assert (event.subject, event.decision, event.reason) != (None, "allow", None), described
            continue
        if event.tool is None:  # refused before it named a tool (malformed JSON-RPC, headers that disagree)
            assert (event.outcome, bool(event.reason)) == ("invalid_input", True), described
            continue
        # alice, or mallory before her key was revoked (the auth tests)
        assert (event.subject in ("alice", "mallory"), event.auth_method, event.groups) == (True, "api_key", ["eng"])
        if event.outcome == "ok" and event.repo is not None and event.tool not in ("list_branches", "list_tags"):
            assert event.resolved_sha, described  # every read was made at a named commit (a ref listing names many)
            assert event.decision == "allow", described
        if event.outcome == "denied":
            assert (event.decision, bool(event.reason)) == ("deny", True), described


async def test_audit_tail_shows_the_calls(deployment: Deployment) -> None:
    ids = await _make_calls(deployment)
    stored = len(await deployment.audit())
    main = deployment.facts.handbook["main"]
    result = CliRunner().invoke(app, ["--data-dir", str(deployment.settings.data_dir), "audit", "tail", "-n", "50"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == min(stored, 50)

    def shown(*parts: str) -> bool:
        return any(all(part in line for part in parts) for line in lines)

    target = f"acme/handbook@main ({main[:7]})"
    assert shown(f"  alice  {MODERN_CLIENT}  get_file_contents  {target}  allow/ok  ")
    assert shown(f"  alice  {USER_AGENT}  get_file_contents  {target}  allow/ok  ")
    assert shown(
        f"  alice  {MODERN_CLIENT}  get_file_contents  {target}  deny/denied  ",
        "\"path 'config/.env' is denied by the default deny list (pattern '.env')\"",
    )
    assert shown("  alice  ", "  list_branches  acme/vault  deny/denied  ", "\"denied by rule 'vault-locked': ")
    assert shown("  get_file_contents  acme/handbook@--upload-pack=x  allow/invalid_input  ")
    assert shown("  alice  ", "  drop_tables  -  none/invalid_input  ", "Unknown tool: 'drop_tables'")
    assert shown(f"  alice  raw-e2e/0.1  list_commits  {target}  allow/ok  ")
    assert shown("  -  -  search_code  -  deny/unauthenticated  ", '"missing Authorization header')
    assert ids  # the calls above are the newest in the store, so all of them are among the 50 lines
