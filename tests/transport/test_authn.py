"""Bearer authentication at the edge, with the real API-key authenticator over a SQLite key store."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy.engine import Engine
from starlette.types import Receive, Scope, Send

from bastion.app import _challenge
from bastion.audit.event import AuditEvent
from bastion.auth.apikey import ApiKeyAuthenticator
from bastion.auth.keys import KeyStore, parse_key_id
from bastion.config import Settings
from bastion.errors import Unauthenticated
from bastion.principal import Principal
from bastion.store.db import api_keys, write_transaction
from bastion.transport.authn import PRINCIPAL_KEY, AuthenticationMiddleware
from bastion.transport.edge import EdgeMiddleware

REALM = 'Bearer realm="mcp-bastion"'


async def _whoami(scope: Scope, receive: Receive, send: Send) -> None:
    """The protected app: says who the middleware let in."""
    principal: Principal = scope[PRINCIPAL_KEY]
    body = json.dumps(
        {
            "subject": principal.subject,
            "groups": sorted(principal.groups),
            "auth_method": principal.auth_method,
            "credential_id": principal.credential_id,
        }
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def events() -> list[AuditEvent]:
    return []


@pytest.fixture
async def client(settings: Settings, store: KeyStore, events: list[AuditEvent]) -> AsyncIterator[httpx2.AsyncClient]:
    authenticator = ApiKeyAuthenticator(store)
    protected = AuthenticationMiddleware(_whoami, [authenticator], record=events.append, challenge=_challenge(settings))
    app = EdgeMiddleware(protected, max_body_bytes=1_000_000, trusted_proxies=0)
    transport = httpx2.ASGITransport(app, client=("198.51.100.23", 50000))
    try:
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        authenticator.close()


def _assert_refused(response: httpx2.Response, error: str, description: str) -> None:
    assert response.status_code == 401
    assert response.json() == {"error": error or "unauthenticated", "error_description": description}
    if error:
        expected = f'{REALM}, error="{error}", error_description="{description.replace(chr(34), chr(39))}"'
    else:  # no credentials at all: RFC 6750 3.1 says the challenge carries no error code
        expected = REALM
    assert response.headers["www-authenticate"] == expected


def _server_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged on the server side (the test's own HTTP client logs request URLs; it is not the server)."""
    return "\n".join(
        f"{record.name}: {record.getMessage()}" for record in caplog.records if not record.name.startswith("httpx2")
    )


def _assert_never_echoed(secret: str, response: httpx2.Response, events: list[AuditEvent], logs: str) -> None:
    assert secret not in response.text
    for name, value in response.headers.items():
        assert secret not in value, name
    for event in events:
        assert secret not in event.model_dump_json()
    assert secret not in logs


# -- malformed requests --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_request_without_authorization_gets_a_bare_challenge(
    client: httpx2.AsyncClient, events: list[AuditEvent]
) -> None:
    response = await client.post(
        "/mcp", headers={"Mcp-Method": "tools/call", "Mcp-Name": "get_file_contents", "X-Request-Id": "req-1"}
    )
    _assert_refused(response, "", "missing Authorization header: send 'Authorization: Bearer <key>'")
    assert response.headers["x-request-id"] == "req-1"
    [event] = events
    assert (event.outcome, event.decision, event.reason) == (
        "unauthenticated",
        "deny",
        "missing Authorization header: send 'Authorization: Bearer <key>'",
    )
    assert (event.request_id, event.source_ip, event.tool) == ("req-1", "198.51.100.23", "get_file_contents")
    assert event.metadata == {"method": "tools/call"}
    assert event.subject is None


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["Basic YWxpY2U6c2VjcmV0", "Token abc", "Bearer", "Bearer    ", "bst_only"])
async def test_a_malformed_authorization_header_is_an_invalid_request(
    client: httpx2.AsyncClient, events: list[AuditEvent], value: str
) -> None:
    response = await client.get("/mcp", headers={"Authorization": value})
    _assert_refused(response, "invalid_request", "the Authorization header must be 'Bearer <credential>'")
    assert [e.reason for e in events] == ["the Authorization header must be 'Bearer <credential>'"]
    assert events[0].metadata == {"method": "GET"}  # no Mcp-Method header: the HTTP method


@pytest.mark.anyio
async def test_a_token_in_the_query_string_is_refused_even_with_a_valid_header(
    client: httpx2.AsyncClient, store: KeyStore, events: list[AuditEvent], caplog: pytest.LogCaptureFixture
) -> None:
    _, key = store.create("alice")
    caplog.set_level(logging.DEBUG)
    response = await client.get("/mcp", params={"access_token": key}, headers={"Authorization": f"Bearer {key}"})
    _assert_refused(
        response,
        "invalid_request",
        "credentials in the query string are refused; send an Authorization: Bearer header",
    )
    assert events[0].outcome == "unauthenticated"
    _assert_never_echoed(key, response, events, _server_logs(caplog))


@pytest.mark.anyio
async def test_a_token_no_authenticator_recognises_is_an_invalid_token(
    client: httpx2.AsyncClient, events: list[AuditEvent], caplog: pytest.LogCaptureFixture
) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    caplog.set_level(logging.DEBUG)
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {token}"})
    _assert_refused(response, "invalid_token", "the bearer token is not a credential this server issues or trusts")
    _assert_never_echoed(token, response, events, _server_logs(caplog))
    _assert_never_echoed("c2lnbmF0dXJl", response, events, _server_logs(caplog))


@pytest.mark.anyio
async def test_what_a_refused_caller_names_is_bounded_in_the_audit(
    client: httpx2.AsyncClient, events: list[AuditEvent]
) -> None:
    """Unauthenticated, a caller chooses the Mcp-Name and Mcp-Method headers: megabytes of them made records of
    megabytes (found by a probe); they are cut as every other layer cuts them."""
    headers = {"Authorization": "Bearer nothing-we-know", "Mcp-Name": "n" * 100_000, "Mcp-Method": "m" * 100_000}
    response = await client.post("/mcp", headers=headers, content=b"{}")
    assert response.status_code == 401
    [event] = events
    assert (event.tool, event.metadata["method"]) == ("n" * 128, "m" * 64)


@pytest.mark.anyio
async def test_a_truncated_api_key_is_described_by_its_shape_only(
    client: httpx2.AsyncClient, store: KeyStore, events: list[AuditEvent], caplog: pytest.LogCaptureFixture
) -> None:
    _, key = store.create("alice")
    truncated = key[:-5]
    caplog.set_level(logging.DEBUG)
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {truncated}"})
    assert response.status_code == 401
    description = response.json()["error_description"]
    assert description.startswith(f"not a bastion API key: it starts with 'bst_' but is {len(truncated)} characters")
    assert "copied incompletely" in description
    _assert_never_echoed(truncated.split("_", 2)[2], response, events, _server_logs(caplog))


# -- real keys -----------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_valid_key_puts_its_principal_in_the_scope(
    client: httpx2.AsyncClient, store: KeyStore, events: list[AuditEvent]
) -> None:
    record, key = store.create("alice", groups=["eng", "ops"])
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.json() == {
        "subject": "alice",
        "groups": ["eng", "ops"],
        "auth_method": "api_key",
        "credential_id": record.key_id,
    }
    assert events == []  # successes are audited by the tool layer, not here


@pytest.mark.anyio
async def test_the_scheme_is_case_insensitive(client: httpx2.AsyncClient, store: KeyStore) -> None:
    _, key = store.create("alice")
    response = await client.get("/mcp", headers={"Authorization": f"bearer {key}"})
    assert (response.status_code, response.json()["subject"]) == (200, "alice")


@pytest.mark.anyio
async def test_a_revoked_key_is_refused_with_when(
    client: httpx2.AsyncClient, store: KeyStore, events: list[AuditEvent], caplog: pytest.LogCaptureFixture
) -> None:
    record, key = store.create("alice")
    assert (await client.get("/mcp", headers={"Authorization": f"Bearer {key}"})).status_code == 200
    revoked = store.revoke(record.key_id)
    assert revoked.revoked_at is not None
    caplog.set_level(logging.DEBUG)
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {key}"})
    when = revoked.revoked_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    _assert_refused(
        response,
        "invalid_token",
        f"API key {record.key_id} was revoked at {when}; ask an administrator for a new key",
    )
    assert [e.reason for e in events] == [response.json()["error_description"]]
    assert f"API key rejected: revoked (key id {record.key_id})" in _server_logs(caplog)  # logs are captured
    _assert_never_echoed(key, response, events, _server_logs(caplog))
    _assert_never_echoed(key.split("_", 2)[2], response, events, _server_logs(caplog))


@pytest.mark.anyio
async def test_an_expired_key_is_refused_with_when(
    client: httpx2.AsyncClient,
    store: KeyStore,
    engine: Engine,
    events: list[AuditEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    record, key = store.create("alice", expires_at=datetime.now(UTC) + timedelta(days=1))
    assert (await client.get("/mcp", headers={"Authorization": f"Bearer {key}"})).status_code == 200
    expired_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with write_transaction(engine) as connection:  # the clock cannot be moved, the row can
        connection.execute(api_keys.update().where(api_keys.c.key_id == record.key_id).values(expires_at=expired_at))
    caplog.set_level(logging.DEBUG)
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {key}"})
    when = expired_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    _assert_refused(
        response, "invalid_token", f"API key {record.key_id} expired at {when}; ask an administrator for a new key"
    )
    assert events[0].reason == response.json()["error_description"]
    _assert_never_echoed(key, response, events, _server_logs(caplog))


@pytest.mark.anyio
async def test_a_wrong_secret_for_a_real_key_id_reads_like_an_unknown_key(
    client: httpx2.AsyncClient, store: KeyStore, events: list[AuditEvent], caplog: pytest.LogCaptureFixture
) -> None:
    record, key = store.create("alice")
    forged = key[:-3] + ("AAA" if not key.endswith("AAA") else "BBB")
    assert parse_key_id(forged) == record.key_id
    caplog.set_level(logging.DEBUG)
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error_description"].startswith(f"API key not recognised (key id {record.key_id})")
    _assert_never_echoed(forged.split("_", 2)[2], response, events, _server_logs(caplog))
    _assert_never_echoed(key.split("_", 2)[2], response, events, _server_logs(caplog))


# -- without the edge, and outside HTTP ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_without_the_edge_the_failure_is_still_audited(settings: Settings, store: KeyStore) -> None:
    events: list[AuditEvent] = []
    authenticator = ApiKeyAuthenticator(store)
    app = AuthenticationMiddleware(_whoami, [authenticator], record=events.append, challenge=_challenge(settings))
    try:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://t") as http:
            response = await http.get("/mcp")
    finally:
        authenticator.close()
    assert response.status_code == 401
    [event] = events
    assert (event.request_id, event.source_ip, event.outcome) == (None, None, "unauthenticated")


@pytest.mark.anyio
async def test_non_http_scopes_are_not_authenticated(settings: Settings) -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    app = AuthenticationMiddleware(inner, [], record=lambda event: None, challenge=_challenge(settings))

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        raise AssertionError(f"nothing may be sent: {message}")

    await app({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]


def test_the_challenge_never_carries_quotes_or_backslashes_from_a_message(settings: Settings) -> None:
    challenge = _challenge(settings)
    value = challenge(Unauthenticated('token "abc" is bad\\worse', error="invalid_token"))
    assert value == 'Bearer realm="mcp-bastion", error="invalid_token", error_description="token \'abc\' is badworse"'
    assert challenge(Unauthenticated("no credentials", error="")) == REALM
