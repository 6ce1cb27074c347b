"""Adversarial: bearer tokens an attacker would send, against the whole app over real HTTP with a real JWKS.

Forged (another key under a published kid), expired, not yet valid, another issuer, another audience, `alg: none`,
HMAC "signed" with the issuer's public key, an unknown kid, a token in the query string, a valid token without the
required scope. Each is refused with a reason in the JSON body, a challenge that tells the client where to get a
proper token (resource_metadata, scope), an audit record with that same reason, and the token itself nowhere:
not in the answer, not in the audit record, not in any log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.types import Receive, Scope, Send
from tests.support.oidc import (
    IdentityProvider,
    TestKey,
    ec_key,
    forge_hmac_with_public_key,
    forge_unsigned,
    identity_provider,
    rsa_key,
    sign,
)
from tests.support.server import free_port, serve_app

from bastion.app import Runtime, create_app
from bastion.audit.event import AuditEvent
from bastion.audit.sink import AuditQuery
from bastion.audit.sqlite import SqliteAuditSink
from bastion.auth.keys import KeyStore
from bastion.auth.oidc import OidcAuthenticator
from bastion.config import AuthSettings, OidcSettings, Settings
from bastion.store.db import open_state
from bastion.transport.authn import PRINCIPAL_KEY, AuthenticationMiddleware

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
SCOPE = "bastion:read"
POLICY = "version: 1\nrules: []\n"


@dataclass
class Served:
    settings: Settings
    runtime: Runtime
    url: str
    idp: IdentityProvider
    key: TestKey
    api_key: str

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/oauth-protected-resource/mcp"

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return self.idp.claims(self.settings.resource_url, **{"scope": f"openid {SCOPE}", **overrides})

    async def audit_for(self, request_id: str) -> list[AuditEvent]:
        assert await self.runtime.audit.flush(10), "the audit pipeline did not write within 10 s"
        sink = SqliteAuditSink(self.settings.audit_db)
        try:
            return [event for _, event in sink.query(AuditQuery(limit=100_000)) if event.request_id == request_id]
        finally:
            sink.close()


def _api_key(settings: Settings) -> str:
    engine = open_state(settings)
    try:
        _, key = KeyStore(engine).create("keyholder", groups=("eng",), expires_at=datetime.now(UTC) + timedelta(days=1))
    finally:
        engine.dispose()
    return key


def _settings(base: Path, port: int, issuer: str) -> Settings:
    oidc = OidcSettings(issuer=issuer, required_scopes=[SCOPE], leeway_seconds=30)
    settings = Settings(data_dir=base / "data", public_url=f"http://127.0.0.1:{port}/mcp", auth=AuthSettings(oidc=oidc))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.policy_file.write_text(POLICY)
    return settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Generator[Served]:
    key = rsa_key("rs-1")
    with identity_provider(key, ec_key("ec-1")) as idp:
        port = free_port()
        settings = _settings(tmp_path_factory.mktemp("tokens"), port, idp.issuer)
        api_key = _api_key(settings)
        app = create_app(settings)
        with serve_app(app, port=port) as url:
            yield Served(settings, app.state.runtime, url, idp, key, api_key)


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30) as client:
        yield client


def _call(token: str | None) -> tuple[dict[str, str], bytes]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "attacker", "version": "1"},
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "list_repositories", "arguments": {}, "_meta": meta},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "list_repositories",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers, json.dumps(body).encode()


async def _post(http: httpx2.AsyncClient, served: Served, token: str | None, query: str = "") -> httpx2.Response:
    headers, body = _call(token)
    return await http.post(served.mcp_url + query, content=body, headers=headers)


def _challenge_params(challenge: str) -> dict[str, str]:
    assert challenge.startswith("Bearer "), challenge
    params: dict[str, str] = {}
    for part in challenge.removeprefix("Bearer ").split('", '):
        name, _, value = part.partition('="')
        params[name.strip()] = value.rstrip('"')
    return params


async def _assert_refused(
    served: Served,
    response: httpx2.Response,
    token: str,
    *,
    status: int = 401,
    error: str = "invalid_token",
    reason: Callable[[str], bool],
    outcome: str = "unauthenticated",
    subject: str | None = None,
) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    description: str = body["error_description"]
    assert reason(description), description
    challenge = _challenge_params(response.headers["www-authenticate"])
    assert challenge == {
        "realm": "mcp-bastion",
        "error": error,
        "error_description": description.replace('"', "'"),
        "resource_metadata": served.metadata_url,
        "scope": SCOPE,
    }
    for part in token.split("."):
        if len(part) > 8:
            assert part not in response.text
            assert part not in str(response.headers)
    [event] = await served.audit_for(response.headers["x-request-id"])
    assert (event.decision, event.outcome, event.reason, event.subject) == ("deny", outcome, description, subject)
    assert event.tool == "list_repositories"
    recorded = event.model_dump_json()
    for part in token.split("."):
        if len(part) > 8:
            assert part not in recorded, "the token must never reach the audit trail"
    return description


def _forged(served: Served) -> str:
    return sign(rsa_key("rs-1"), served.claims())  # right kid, attacker's key


def _expired(served: Served) -> str:
    now = int(time.time())
    return sign(served.key, served.claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600))


def _not_yet_valid(served: Served) -> str:
    return sign(served.key, served.claims(nbf=int(time.time()) + 3600))


def _wrong_issuer(served: Served) -> str:
    return sign(served.key, served.claims(iss="https://evil.example"))


def _wrong_audience(served: Served) -> str:
    return sign(served.key, served.idp.claims("https://other.example/mcp", scope=SCOPE))


def _alg_none(served: Served) -> str:
    return forge_unsigned(served.claims(), kid="rs-1")


def _hmac_with_public_key(served: Served) -> str:
    return forge_hmac_with_public_key(served.key, served.claims())


def _unknown_kid(served: Served) -> str:
    return sign(rsa_key("ghost"), served.claims())


CASES: list[tuple[str, Callable[[Served], str], Callable[[Served, str], bool]]] = [
    (
        "forged (another key under the published kid)",
        _forged,
        lambda s, d: (
            d == "the token's signature does not verify with the issuer's key 'rs-1': it was altered, or "
            "signed by someone else"
        ),
    ),
    ("expired", _expired, lambda s, d: d.startswith("the token expired at ") and "get a new access token" in d),
    ("not yet valid", _not_yet_valid, lambda s, d: d.startswith("the token is not valid yet: its 'nbf' is ")),
    (
        "wrong issuer",
        _wrong_issuer,
        lambda s, d: (
            d == f"the token has issuer 'https://evil.example', but this server only trusts tokens from "
            f"'{s.idp.issuer}'"
        ),
    ),
    (
        "wrong audience",
        _wrong_audience,
        lambda s, d: d.startswith(
            f"the token was issued for 'https://other.example/mcp', not for this server ({s.settings.resource_url})"
        ),
    ),
    ("alg none", _alg_none, lambda s, d: d == "the token is unsigned (alg 'none'); only signed tokens are accepted"),
    (
        "hs256 with the public key",
        _hmac_with_public_key,
        lambda s, d: d.startswith("the token is signed with HMAC ('HS256'), a shared-secret algorithm"),
    ),
    (
        "unknown kid",
        _unknown_kid,
        lambda s, d: (
            d.startswith("the token was signed with key id 'ghost', which the issuer's JWKS does not publish")
            and "'ec-1', 'rs-1'" in d
        ),
    ),
]


@pytest.mark.parametrize(("make", "check"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
async def test_hostile_tokens_are_refused_with_a_reason_a_challenge_and_an_audit_record(
    served: Served,
    http: httpx2.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[Served], str],
    check: Callable[[Served, str], bool],
) -> None:
    caplog.set_level(logging.DEBUG)
    token = make(served)
    response = await _post(http, served, token)
    await _assert_refused(served, response, token, reason=lambda description: check(served, description))
    for part in token.split("."):
        if len(part) > 8:
            assert part not in caplog.text, "the token must never be logged"


async def test_a_jwt_in_the_query_string_is_refused(served: Served, http: httpx2.AsyncClient) -> None:
    token = sign(served.key, served.claims())  # a perfectly valid token, in the wrong place
    for with_header in (False, True):
        headers, body = _call(token if with_header else None)
        response = await http.post(f"{served.mcp_url}?access_token={token}", content=body, headers=headers)
        description = await _assert_refused(
            served,
            response,
            token,
            error="invalid_request",
            reason=lambda d: d.startswith("credentials in the query string are refused"),
        )
        assert "send an Authorization: Bearer header" in description


async def test_a_valid_token_without_the_required_scope_is_403_insufficient_scope(
    served: Served, http: httpx2.AsyncClient
) -> None:
    token = sign(served.key, served.claims(scope="openid profile"))
    response = await _post(http, served, token)
    description = await _assert_refused(
        served,
        response,
        token,
        status=403,
        error="insufficient_scope",
        reason=lambda d: d.startswith(f"the token lacks the scope(s) this server requires: {SCOPE}"),
        outcome="denied",
        subject="user-1234",
    )
    assert f"request a token with scope={SCOPE}" in description


async def test_no_token_gets_a_bare_challenge_that_says_where_to_get_one(
    served: Served, http: httpx2.AsyncClient
) -> None:
    response = await _post(http, served, None)
    assert response.status_code == 401
    assert _challenge_params(response.headers["www-authenticate"]) == {
        "realm": "mcp-bastion",
        "resource_metadata": served.metadata_url,
        "scope": SCOPE,
    }


async def test_valid_tokens_and_api_keys_both_work(served: Served, http: httpx2.AsyncClient) -> None:
    for token in (sign(served.key, served.claims()), served.api_key):
        response = await _post(http, served, token)
        assert response.status_code == 200, response.text
        assert response.json()["result"]["structuredContent"]["repositories"] == []
    [event] = [
        event for event in await served.audit_for(response.headers["x-request-id"]) if event.tool == "list_repositories"
    ]
    assert (event.subject, event.auth_method) == ("keyholder", "api_key")


async def test_protected_resource_metadata_is_served_without_authentication(
    served: Served, http: httpx2.AsyncClient
) -> None:
    expected = {
        "resource": served.settings.resource_url,
        "authorization_servers": [served.idp.issuer],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-bastion",
    }
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        response = await http.get(served.url + path)
        assert response.status_code == 200, response.text
        assert response.json() == expected
        assert response.headers["access-control-allow-origin"] == "*"
    # any other discovery document is not ours to publish: 404, pointing at the one that is, never a challenge
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        response = await http.get(served.url + path)
        assert (response.status_code, "www-authenticate" in response.headers) == (404, False), path
        assert response.json()["error_description"] == (
            "not published here; this server's OAuth metadata is at /.well-known/oauth-protected-resource"
        )


async def test_an_unreachable_identity_provider_is_503_not_a_challenge(
    tmp_path: Path, http: httpx2.AsyncClient
) -> None:
    key = rsa_key("rs-1")
    with identity_provider(key) as idp:
        idp.fail_jwks = True
        port = free_port()
        settings = _settings(tmp_path, port, idp.issuer)
        app = create_app(settings)
        with serve_app(app, port=port) as url:
            headers, body = _call(sign(key, idp.claims(settings.resource_url, scope=SCOPE)))
            response = await http.post(f"{url}/mcp", content=body, headers=headers)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert "the identity provider's signing keys could not be fetched" in response.json()["error_description"]
    assert "www-authenticate" not in response.headers
    assert response.headers["retry-after"] == "30"


async def test_the_token_never_travels_past_authentication(served: Served) -> None:
    """Whatever sits behind authentication (the SDK, tools, a federated upstream) never sees the credential, so
    it cannot pass it through to another service."""
    seen: dict[str, Any] = {}

    async def downstream(scope: Scope, receive: Receive, send: Send) -> None:
        seen["headers"] = dict(scope["headers"])
        seen["principal"] = scope[PRINCIPAL_KEY]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    oidc = OidcAuthenticator(served.settings.auth.oidc, served.settings.resource_url)
    app = AuthenticationMiddleware(downstream, [oidc], record=lambda event: None, challenge=lambda exc: "Bearer")
    token = sign(served.key, served.claims())
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://bastion.test") as client:
        response = await client.post("/mcp", headers={"Authorization": f"Bearer {token}", "X-Trace": "kept"})
    assert response.status_code == 204
    assert b"authorization" not in seen["headers"]
    assert seen["headers"][b"x-trace"] == b"kept"
    assert seen["principal"].subject == "user-1234"
    assert token.split(".")[2] not in repr(seen["principal"])
