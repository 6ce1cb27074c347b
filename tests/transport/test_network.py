"""The source-address allowlist: CIDR parsing, address matching, and the middleware in the real app behind
trusted proxies (forged X-Forwarded-For entries must not get through) and behind a serverless adapter."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.ratelimit.harness import Served, jsonrpc, modern_headers, serve_bastion
from tests.support.server import free_port

from bastion.app import create_app
from bastion.config import ServerSettings, Settings
from bastion.demo import DEMO_POLICY
from bastion.errors import ConfigError
from bastion.transport.edge import SOURCE_IP_KEY, client_address
from bastion.transport.network import IpAllowlist, parse_address

pytestmark = pytest.mark.anyio

# -- parsing and matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:51234", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),  # IPv4-mapped: a dual-stack socket's spelling of an IPv4 peer
    ],
)
def test_addresses_are_read_as_proxies_and_sockets_write_them(text: str, expected: str) -> None:
    assert parse_address(text) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("text", ["", "unknown", "10.0.0", "evil.example.com", "10.0.0.1, 10.0.0.2", "[::1"])
def test_anything_else_is_not_an_address(text: str) -> None:
    assert parse_address(text) is None


def test_cidrs_of_both_families_and_bare_addresses_are_accepted() -> None:
    allowlist = IpAllowlist.parse(["10.0.0.0/8", "2001:db8::/32", "192.0.2.10"])
    assert [str(network) for network in allowlist.networks] == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.10/32"]
    assert allowlist.allows("10.200.3.4")
    assert allowlist.allows("2001:db8:ffff::1")
    assert allowlist.allows("192.0.2.10")
    assert allowlist.allows("::ffff:10.1.1.1")
    assert not allowlist.allows("192.0.2.11")
    assert not allowlist.allows("11.0.0.1")
    assert not allowlist.allows("2001:db9::1")
    assert not allowlist.allows(None), "an unknown address is never inside an allowed network"
    assert not allowlist.allows("not-an-address")
    assert not IpAllowlist.parse([]), "an empty allowlist is falsy: the middleware is not installed"


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "10.0.0/8", "example.com", "", "2001:db8::/129"])
def test_an_invalid_cidr_is_a_config_error_naming_it(cidr: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IpAllowlist.parse(["10.0.0.0/8", cidr])
    assert caught.value.message.startswith(f"server.ip_allowlist: {cidr!r} is not a network in CIDR notation")


def test_a_cidr_with_host_bits_set_is_refused_with_the_network_it_probably_means() -> None:
    with pytest.raises(ConfigError, match=r"'10\.1\.2\.3/16' .*; did you mean 10\.1\.0\.0/16\?"):
        IpAllowlist.parse(["10.1.2.3/16"])


def test_the_server_refuses_to_start_before_creating_anything(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", server=ServerSettings(ip_allowlist=["10.0.0.0/8", "10.0.0.300/32"]))
    with pytest.raises(ConfigError, match=r"'10\.0\.0\.300/32' is not a network"):
        create_app(settings)
    assert not settings.data_dir.exists()


def test_an_address_a_serverless_adapter_put_in_the_scope_wins_over_peer_and_header() -> None:
    scope: Scope = {
        "type": "http",
        "client": ("127.0.0.1", 50000),
        "headers": [(b"x-forwarded-for", b"1.2.3.4, 5.6.7.8")],
        SOURCE_IP_KEY: "198.51.100.20",
    }
    assert client_address(scope, 0) == "198.51.100.20"
    assert client_address(scope, 1) == "198.51.100.20"
    assert client_address({**scope, SOURCE_IP_KEY: ""}, 1) == "5.6.7.8", "an empty value is no address"


# -- the middleware in the real app --------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30) as client:
        yield client


async def _list_tools(
    http: httpx2.AsyncClient, served: Served, key: str | None, forwarded: str | None = None
) -> httpx2.Response:
    headers = modern_headers(key or "", "tools/list")
    if key is None:
        del headers["Authorization"]
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return await http.post(served.mcp_url, json=jsonrpc("tools/list"), headers=headers)


async def test_behind_one_proxy_the_address_it_appended_decides(tmp_path: Path, http: httpx2.AsyncClient) -> None:
    # The test client plays both the caller and the proxy on 127.0.0.1: the proxy appends the caller's address.
    server = ServerSettings(ip_allowlist=["10.0.0.0/8"], trusted_proxies=1)
    with serve_bastion(tmp_path, server=server) as served:
        key = served.keys["alice"]
        allowed = await _list_tools(http, served, key, forwarded="10.1.2.3")
        assert allowed.status_code == 200, allowed.text

        # The caller wrote an allowed address itself; the proxy appended the real one after it.
        forged = await _list_tools(http, served, key, forwarded="10.1.2.3, 203.0.113.9")
        assert forged.status_code == 403
        assert forged.json() == {
            "error": "forbidden",
            "error_description": "address 203.0.113.9 is not in the allowed networks",
        }
        assert "x-request-id" in forged.headers

        events = [e for e in await served.audit() if e.request_id == forged.headers["x-request-id"]]
        assert len(events) == 1
        (event,) = events
        assert (event.outcome, event.decision, event.source_ip, event.subject) == (
            "denied",
            "deny",
            "203.0.113.9",
            None,
        )
        assert event.reason == "address 203.0.113.9 is not in the allowed networks"
        assert event.metadata == {"layer": "network", "method": "POST", "path": "/mcp"}


async def test_a_refused_address_learns_nothing_about_credentials(tmp_path: Path, http: httpx2.AsyncClient) -> None:
    server = ServerSettings(ip_allowlist=["10.0.0.0/8"], trusted_proxies=1)
    with serve_bastion(tmp_path, server=server) as served:
        for key in (served.keys["alice"], "bst_000000000000_" + "A" * 43, None):
            refused = await _list_tools(http, served, key, forwarded="203.0.113.9")
            assert refused.status_code == 403, "the same answer whatever the credential: no 401 to probe keys with"
            assert "www-authenticate" not in refused.headers
        outcomes = [event.outcome for event in await served.audit()]
        assert outcomes == ["denied", "denied", "denied"], "no authentication was attempted"


async def test_health_probes_stay_open_to_every_address(tmp_path: Path, http: httpx2.AsyncClient) -> None:
    server = ServerSettings(ip_allowlist=["10.0.0.0/8"], trusted_proxies=1)
    with serve_bastion(tmp_path, server=server) as served:
        blocked = {"X-Forwarded-For": "203.0.113.9"}
        health = await http.get(f"{served.url}/health", headers=blocked)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        ready = await http.get(f"{served.url}/ready", headers=blocked)
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        other = await http.get(f"{served.url}/health/../mcp", headers=blocked)
        assert other.status_code == 403


async def test_without_trusted_proxies_the_header_is_ignored(tmp_path: Path, http: httpx2.AsyncClient) -> None:
    with serve_bastion(tmp_path / "a", server=ServerSettings(ip_allowlist=["10.0.0.0/8"])) as served:
        refused = await _list_tools(http, served, served.keys["alice"], forwarded="10.1.2.3")
        assert refused.status_code == 403
        assert refused.json()["error_description"] == "address 127.0.0.1 is not in the allowed networks"
    with serve_bastion(tmp_path / "b", server=ServerSettings(ip_allowlist=["127.0.0.0/8", "::1/128"])) as served:
        assert (await _list_tools(http, served, served.keys["alice"], forwarded="203.0.113.9")).status_code == 200


async def test_ipv6_callers_are_matched_against_ipv6_networks(tmp_path: Path, http: httpx2.AsyncClient) -> None:
    server = ServerSettings(ip_allowlist=["2001:db8::/32"], trusted_proxies=1)
    with serve_bastion(tmp_path, server=server) as served:
        key = served.keys["alice"]
        assert (await _list_tools(http, served, key, forwarded="2001:db8:1::5")).status_code == 200
        refused = await _list_tools(http, served, key, forwarded="2001:db9::5")
        assert refused.json()["error_description"] == "address 2001:db9::5 is not in the allowed networks"


def _adapter(source_ip: str):
    """What the Lambda handler does with API Gateway's requestContext.identity.sourceIp."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def with_source_ip(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                scope[SOURCE_IP_KEY] = source_ip
            await app(scope, receive, send)

        return with_source_ip

    return wrap


async def test_the_address_from_a_serverless_adapter_is_the_one_checked_and_audited(
    tmp_path: Path, http: httpx2.AsyncClient
) -> None:
    server = ServerSettings(ip_allowlist=["10.0.0.0/8"])  # trusted_proxies=0, as on Lambda
    with serve_bastion(tmp_path / "in", server=server, wrap=_adapter("10.9.8.7")) as served:
        allowed = await _list_tools(http, served, served.keys["alice"], forwarded="203.0.113.9")
        assert allowed.status_code == 200, allowed.text
        call = await http.post(
            served.mcp_url,
            json=jsonrpc("tools/call", {"name": "list_repositories", "arguments": {}}),
            headers=modern_headers(served.keys["alice"], "tools/call", "list_repositories"),
        )
        assert call.status_code == 200
        assert [event.source_ip for event in await served.audit()] == ["10.9.8.7"]
    with serve_bastion(tmp_path / "out", server=server, wrap=_adapter("198.51.100.20")) as served:
        refused = await _list_tools(http, served, served.keys["alice"], forwarded="10.1.2.3")
        assert refused.json()["error_description"] == "address 198.51.100.20 is not in the allowed networks"


@pytest.mark.slow
def test_bastion_serve_leaves_x_forwarded_for_to_the_app(tmp_path: Path) -> None:
    """The production entry point: uvicorn's own proxy-header handling would trust X-Forwarded-For from loopback
    peers (and from FORWARDED_ALLOW_IPS) and rewrite the client address before the allowlist sees it."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "policy.yaml").write_text(DEMO_POLICY)
    port = free_port()
    env = {
        **os.environ,
        "BASTION_SERVER__IP_ALLOWLIST": json.dumps(["10.0.0.0/8"]),
        "BASTION_SERVER__TRUSTED_PROXIES": "0",
        "FORWARDED_ALLOW_IPS": "*",  # what an operator might set for uvicorn: still must not matter
    }
    bastion = Path(sys.executable).with_name("bastion")
    argv = [str(bastion), "--data-dir", str(data_dir), "serve", "--port", str(port)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx2.Client(timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if http.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else "exited"
                assert time.monotonic() < deadline, "bastion serve did not answer /health within 30 s"
                time.sleep(0.1)
            refused = http.post(
                f"http://127.0.0.1:{port}/mcp", json=jsonrpc("tools/list"), headers={"X-Forwarded-For": "10.1.2.3"}
            )
        assert refused.status_code == 403
        assert refused.json()["error_description"] == "address 127.0.0.1 is not in the allowed networks"
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr:
            process.stderr.close()
