"""/health and /ready: liveness always answers; readiness runs every check, bounded by a timeout."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from bastion import __version__
from bastion.transport.health import ReadinessCheck, health, readiness_endpoint


def _client(checks: list[ReadinessCheck], timeout: float = 5.0) -> httpx2.AsyncClient:
    app = Starlette(routes=[Route("/health", health), Route("/ready", readiness_endpoint(checks, timeout=timeout))])
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://testserver")


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
