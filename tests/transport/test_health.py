"""/health and /ready: liveness always answers; readiness runs every check, bounded by a timeout."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from bastion import __version__
from bastion.transport.edge import EdgeMiddleware
from bastion.transport.health import ReadinessCheck, ReadyDetails, health, readiness_endpoint


def _client(checks: list[ReadinessCheck], timeout: float = 5.0, details: ReadyDetails = "always") -> httpx2.AsyncClient:
    ready = readiness_endpoint(checks, timeout=timeout, details=details)
    app = Starlette(
        routes=[Route("/health", health), Route("/ready", ready)],
        middleware=[Middleware(EdgeMiddleware, max_body_bytes=1024, trusted_proxies=1)],
    )
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app, client=("127.0.0.1", 123)), base_url="http://testserver"
    )


async def _passes() -> str | None:
    return None


async def _fails() -> str | None:
    return "mirror acme/api is 3 days behind"


async def _raises() -> str | None:
    raise OSError("database is locked")


async def _hangs() -> str | None:
    await asyncio.Event().wait()  # never set
    return None


@pytest.mark.anyio
async def test_health_answers_with_the_version() -> None:
    async with _client([]) as client:
        response = await client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "version": __version__})


@pytest.mark.anyio
async def test_ready_when_every_check_passes() -> None:
    async with _client([ReadinessCheck("state_store", _passes), ReadinessCheck("policy", _passes)]) as client:
        response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"state_store": "ok", "policy": "ok"}}


@pytest.mark.anyio
async def test_ready_with_no_checks_is_ready() -> None:
    async with _client([]) as client:
        response = await client.get("/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ready", "checks": {}})


@pytest.mark.anyio
async def test_a_failing_check_makes_the_instance_not_ready_and_says_why() -> None:
    async with _client([ReadinessCheck("state_store", _passes), ReadinessCheck("mirrors", _fails)]) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "checks": {"state_store": "ok", "mirrors": "mirror acme/api is 3 days behind"},
    }


@pytest.mark.anyio
async def test_a_raising_check_is_reported_with_the_exception() -> None:
    async with _client([ReadinessCheck("state_store", _raises), ReadinessCheck("policy", _passes)]) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"state_store": "OSError: database is locked", "policy": "ok"}


@pytest.mark.anyio
async def test_a_hanging_check_times_out_without_holding_the_others() -> None:
    checks = [ReadinessCheck("mirrors", _hangs), ReadinessCheck("policy", _passes), ReadinessCheck("db", _fails)]
    async with _client(checks, timeout=0.05) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "mirrors": "no answer within 0.05s",
        "policy": "ok",
        "db": "mirror acme/api is 3 days behind",
    }


@pytest.mark.anyio
async def test_reasons_go_only_to_callers_on_the_host_by_default(caplog: pytest.LogCaptureFixture) -> None:
    """The load balancer (any address) learns which check fails; only a caller on the host learns why. The client
    address is the one after trusted proxies, so a forged X-Forwarded-For cannot claim to be local."""
    checks = [ReadinessCheck("state", _passes), ReadinessCheck("mirrors", _fails)]
    async with _client(checks, details="loopback") as client:
        local = await client.get("/ready")
        remote = await client.get("/ready", headers={"X-Forwarded-For": "203.0.113.9"})
        forged = await client.get("/ready", headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.9"})
    assert local.json()["checks"] == {"state": "ok", "mirrors": "mirror acme/api is 3 days behind"}
    for answer in (remote, forged):
        assert answer.status_code == 503
        assert answer.json() == {"status": "not_ready", "checks": {"state": "ok", "mirrors": "failing"}}
    assert "mirrors: mirror acme/api is 3 days behind" in caplog.text  # the operator still has the reason


@pytest.mark.anyio
async def test_reasons_can_be_kept_from_everyone() -> None:
    async with _client([ReadinessCheck("mirrors", _fails)], details="never") as client:
        answer = await client.get("/ready")
    assert answer.json()["checks"] == {"mirrors": "failing"}
