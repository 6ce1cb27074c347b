"""OIDC end to end: a real identity provider on 127.0.0.1 (discovery, JWKS, real RSA and EC keys), the whole app
under uvicorn, and the SDK's own client in both protocol eras.

The provider starts with an RS256 key; mid-test it rotates to an ES256 key and retires the RSA one. Tokens signed
with the new key work at once (the unknown kid triggers one JWKS refetch), tokens signed with the retired key stop
working, and the groups in a Cognito-style `cognito:groups` claim decide what policy allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Implementation
from starlette.applications import Starlette
from tests.support.oidc import IdentityProvider, TestKey, ec_key, identity_provider, rsa_key, sign
from tests.support.served import ServedBastion
from tests.support.server import free_port, serve_app

from bastion.app import create_app
from bastion.config import AuthSettings, OidcSettings, Settings
from bastion.demo_repos import build_demo_repositories
from bastion.repos.sync import add_repository

pytestmark = pytest.mark.anyio

ERAS = ("2026-07-28", "legacy")
APP_CLIENT = "4k1ovbpbnsq2ks9vbsj4ee6a2h"  # the shape of a Cognito app client id
SCOPE = "bastion/read"  # the shape of a Cognito resource-server scope
POLICY = """\
version: 1
rules:
  - name: handbook-readers
    description: The handbook, for the handbook-readers group
    repositories: ["acme/handbook"]
    subjects: {groups: [handbook-readers]}
    operations: [read]
  - name: payments-team
    description: Payments code on main, for the payments team
    repositories: ["acme/payments"]
    subjects: {groups: [payments-team]}
    operations: [read]
    refs: [main]
"""


@dataclass
class Deployment(ServedBastion):
    settings: Settings
    app: Starlette
    url: str
    idp: IdentityProvider


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_demo_repositories(tmp_path_factory.mktemp("origins"))


@pytest.fixture(scope="module")
def rs256() -> TestKey:
    return rsa_key("rsa-2026-01")


@pytest.fixture(scope="module")
def es256() -> TestKey:
    return ec_key("ec-2026-07")


@pytest.fixture
def deployment(tmp_path: Path, origins: dict[str, Path], rs256: TestKey) -> Generator[Deployment]:
    with identity_provider(rs256) as idp:
        port = free_port()
        oidc = OidcSettings(
            issuer=idp.issuer,  # the JWKS URL is discovered from it
            audiences=[APP_CLIENT],
            groups_claim="cognito:groups",
            required_scopes=[SCOPE],
            jwks_refetch_min_seconds=0,  # this test rotates within seconds; test_jwks covers the bound
        )
        settings = Settings(
            data_dir=tmp_path / "data", public_url=f"http://127.0.0.1:{port}/mcp", auth=AuthSettings(oidc=oidc)
        )
        settings.data_dir.mkdir(parents=True)

        async def mirror() -> None:
            for name in ("acme/handbook", "acme/payments"):
                await add_repository(settings, origins[name].resolve().as_uri(), name=name)

        asyncio.run(mirror())
        settings.policy_file.write_text(POLICY)
        app = create_app(settings)
        with serve_app(app, port=port) as url:
            yield Deployment(settings, app, url, idp)


@contextlib.asynccontextmanager
async def sdk_client(deployment: Deployment, mode: str, token: str) -> AsyncGenerator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client_info = Implementation(name="oidc-e2e", version="1.0")
    async with (
        http,
        Client(streamable_http_client(deployment.mcp_url, http_client=http), mode=mode, client_info=client_info) as c,
    ):
        yield c


def text_of(result: CallToolResult) -> str:
    return "\n".join(str(getattr(block, "text", "")) for block in result.content)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def visible_repositories(client: Client) -> list[str]:
    listing = structured(await client.call_tool("list_repositories", {}))
    return [repository["name"] for repository in listing["repositories"]]


async def read_readme(client: Client, repo: str) -> CallToolResult:
    return await client.call_tool("get_file_contents", {"owner": "acme", "repo": repo, "path": "README.md"})


def rsa_token(deployment: Deployment, key: TestKey, groups: list[str]) -> str:
    """An access token with this server's resource URL as audience (RFC 8707), signed RS256."""
    claims = deployment.idp.claims(
        deployment.settings.resource_url,
        sub="alice",
        scope=f"openid {SCOPE}",
        azp=APP_CLIENT,
        **{"cognito:groups": groups},
    )
    return sign(key, claims)


def cognito_token(deployment: Deployment, key: TestKey, groups: list[str]) -> str:
    """A Cognito-shaped access token: no `aud`, `client_id` + `token_use: access`, groups in `cognito:groups`."""
    claims = deployment.idp.claims(
        None,
        sub="8a5c1f2e-bob",
        client_id=APP_CLIENT,
        token_use="access",
        scope=SCOPE,
        username="bob",
        **{"cognito:groups": groups},
    )
    return sign(key, claims)


@pytest.mark.parametrize("mode", ERAS)
async def test_rs256_then_rotation_to_es256_with_groups_driving_policy(
    deployment: Deployment, rs256: TestKey, es256: TestKey, mode: str
) -> None:
    idp = deployment.idp
    old_token = rsa_token(deployment, rs256, ["handbook-readers"])
    async with sdk_client(deployment, mode, old_token) as client:
        assert await visible_repositories(client) == ["acme/handbook"]
        readme = structured(await read_readme(client, "handbook"))
        assert readme["repository"] == "acme/handbook"
        assert readme["content"].startswith("# ")
        denied = await read_readme(client, "payments")
        assert denied.is_error
        assert "no rule allows read on acme/payments for alice (groups: handbook-readers)" in text_of(denied)
    assert (idp.discovery_requests, idp.jwks_requests) == (1, 1)

    # The provider rotates: a new EC key, the RSA key retired.
    idp.publish(es256)
    new_token = cognito_token(deployment, es256, ["payments-team"])
    async with sdk_client(deployment, mode, new_token) as client:
        assert await visible_repositories(client) == ["acme/payments"]
        assert structured(await read_readme(client, "payments"))["repository"] == "acme/payments"
        denied = await read_readme(client, "handbook")
        assert "no rule allows read on acme/handbook for 8a5c1f2e-bob (groups: payments-team)" in text_of(denied)
    assert idp.jwks_requests == 2, "the unknown kid caused exactly one refetch"

    # The retired key's token, valid for another hour by its own claims, is refused now.
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            deployment.mcp_url,
            content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
            headers={
                "Authorization": f"Bearer {old_token}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            },
        )
    assert response.status_code == 401
    assert response.json()["error_description"].startswith(
        "the token was signed with key id 'rsa-2026-01', which the issuer's JWKS does not publish "
        "(it publishes 1 key(s): 'ec-2026-07')"
    )

    calls = [event for event in await deployment.audit() if event.tool == "get_file_contents"]
    assert [(event.subject, event.groups, event.decision, event.repo) for event in calls] == [
        ("alice", ["handbook-readers"], "allow", "acme/handbook"),
        ("alice", ["handbook-readers"], "deny", "acme/payments"),
        ("8a5c1f2e-bob", ["payments-team"], "allow", "acme/payments"),
        ("8a5c1f2e-bob", ["payments-team"], "deny", "acme/handbook"),
    ]
    assert {event.auth_method for event in calls} == {"oidc"}
    assert all(event.credential_id and event.credential_id.startswith("jti:") for event in calls)
    for event in calls:
        for token in (old_token, new_token):
            assert token.split(".")[2] not in event.model_dump_json()
