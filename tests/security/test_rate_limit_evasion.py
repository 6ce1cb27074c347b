"""Adversarial: ways a caller might try to get more calls than its limit allows.

Limits key on the principal's subject, never on the credential or the address: more keys, a token instead of a
key, another protocol era or a forged X-Forwarded-For buy nothing. Run against in-memory counters and a real Redis.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from tests.ratelimit.harness import Served, jsonrpc, serve_bastion, tool_call

from bastion.config import AuthSettings, OidcSettings, RateLimitSettings, ServerSettings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30) as client:
        yield client


def _limits(storage_url: str, **settings: str | dict[str, str]) -> RateLimitSettings:
    return RateLimitSettings.model_validate({"storage_url": storage_url, "tools": {}, **settings})


async def _status(http: httpx2.AsyncClient, served: Served, key: str, tool: str = "list_repositories") -> int:
    return (await tool_call(http, served, key, tool, {"query": "x"} if tool == "search_code" else {})).status_code


async def test_two_api_keys_of_one_subject_share_one_bucket(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    keys = (("laptop", "dana", ("eng",)), ("desktop", "dana", ("eng",)), ("other", "erin", ("eng",)))
    with serve_bastion(tmp_path, rate_limit=_limits(storage_url, default="3/minute"), keys=keys) as served:
        laptop, desktop = served.keys["laptop"], served.keys["desktop"]
        assert [await _status(http, served, key) for key in (laptop, desktop, laptop)] == [200, 200, 200]
        # Switching to the key that has not been used yet does not open a fresh bucket.
        assert await _status(http, served, desktop) == 429
        assert await _status(http, served, laptop) == 429
        # Another subject is unaffected.
        assert await _status(http, served, served.keys["other"]) == 200
        refusals = [event for event in await served.audit() if event.outcome == "rate_limited"]
        assert {event.subject for event in refusals} == {"dana"}
        assert len({event.credential_id for event in refusals}) == 2, "the audit shows both keys were tried"


async def test_alternating_keys_does_not_escape_a_per_tool_limit(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    keys = (("one", "dana", ()), ("two", "dana", ()))
    limits = _limits(storage_url, default="100/minute", tools={"search_code": "2/minute"})
    with serve_bastion(tmp_path, rate_limit=limits, keys=keys) as served:
        one, two = served.keys["one"], served.keys["two"]
        assert await _status(http, served, one, "search_code") == 200
        assert await _status(http, served, two, "search_code") == 200
        assert await _status(http, served, one, "search_code") == 429
        assert await _status(http, served, two, "search_code") == 429


async def test_a_forged_x_forwarded_for_per_request_does_not_open_new_buckets(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    server = ServerSettings(trusted_proxies=1)
    with serve_bastion(tmp_path, rate_limit=_limits(storage_url, default="2/minute"), server=server) as served:
        key = served.keys["alice"]
        statuses: list[int] = []
        for n in range(4):
            body = jsonrpc("tools/call", {"name": "list_repositories", "arguments": {}})
            headers = {
                "Authorization": f"Bearer {key}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
                "MCP-Protocol-Version": "2026-07-28",
                "Mcp-Method": "tools/call",
                "Mcp-Name": "list_repositories",
                "X-Forwarded-For": f"198.51.100.{n + 1}",
            }
            statuses.append((await http.post(served.mcp_url, json=body, headers=headers)).status_code)
        assert statuses == [200, 200, 429, 429]
        addresses = {event.source_ip for event in await served.audit() if event.outcome == "rate_limited"}
        assert addresses == {"198.51.100.3", "198.51.100.4"}, "the audit records the addresses used"


async def test_switching_protocol_era_does_not_reset_the_bucket(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    with serve_bastion(tmp_path, rate_limit=_limits(storage_url, default="1/minute")) as served:
        key = served.keys["alice"]
        assert await _status(http, served, key) == 200  # 2026-07-28
        legacy = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "list_repositories"}}
        assert (await http.post(served.mcp_url, json=body, headers=legacy)).status_code == 429


_OIDC_READY = importlib.util.find_spec("tests.support.oidc") is not None and (
    importlib.util.find_spec("bastion.auth.oidc") is not None
)


@pytest.mark.skipif(not _OIDC_READY, reason="OIDC support (bastion.auth.oidc, tests/support/oidc.py) not present")
async def test_an_oidc_token_and_an_api_key_for_one_subject_share_one_bucket(
    tmp_path: Path, storage_url: str, http: httpx2.AsyncClient
) -> None:
    from tests.support.oidc import identity_provider, rsa_key, sign

    signing_key = rsa_key("k1")
    with identity_provider(signing_key) as idp:
        auth = AuthSettings(oidc=OidcSettings(issuer=idp.issuer))
        keys = (("key", "user-1234", ("eng",)),)
        limits = _limits(storage_url, default="3/minute")
        with serve_bastion(tmp_path, rate_limit=limits, auth=auth, keys=keys) as served:
            token = sign(signing_key, idp.claims(served.settings.resource_url, sub="user-1234"))
            api_key = served.keys["key"]
            assert [await _status(http, served, credential) for credential in (api_key, token, api_key)] == [
                200,
                200,
                200,
            ]
            assert await _status(http, served, token) == 429, "the token found the key's bucket already full"
            refusals = [event for event in await served.audit() if event.outcome == "rate_limited"]
            assert [(event.subject, event.auth_method) for event in refusals] == [("user-1234", "oidc")]
