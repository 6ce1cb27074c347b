"""Who may scrape, and the separate metrics port taking over when its holder lets go."""

from __future__ import annotations

import socket
import time

import httpx2
import pytest
from tests.support.server import free_port

from bastion.observability.exposition import MetricsPortServer, check_scrape
from bastion.observability.metrics import Metrics


@pytest.mark.parametrize(
    ("authorization", "token", "source", "loopback_only", "status"),
    [
        (None, None, "127.0.0.1", True, None),
        (None, None, "::1", True, None),
        (None, None, "10.0.0.7", True, 403),
        (None, None, None, True, 403),
        (None, None, "10.0.0.7", False, None),  # a port of its own: the network is the boundary
        ("Bearer s3cret-token", "s3cret-token", "10.0.0.7", True, None),
        ("bearer s3cret-token", "s3cret-token", "10.0.0.7", True, None),
        ("Bearer s3cret-token-but-longer", "s3cret-token", "127.0.0.1", True, 401),
        ("Basic s3cret-token", "s3cret-token", "127.0.0.1", True, 401),
        (None, "s3cret-token", "127.0.0.1", True, 401),  # with a token set, loopback needs it too
    ],
)
def test_check_scrape(
    authorization: str | None, token: str | None, source: str | None, loopback_only: bool, status: int | None
) -> None:
    refused = check_scrape(authorization, token, source, loopback_only=loopback_only)
    assert (refused[0] if refused else None) == status


def test_the_port_is_taken_over_when_its_holder_lets_go() -> None:
    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    server = MetricsPortServer(Metrics(), "127.0.0.1", port, None, retry_seconds=0.05)
    server.start()
    try:
        time.sleep(0.2)
        assert not server.bound, "bound a port another process holds"
        holder.close()
        deadline = time.monotonic() + 10
        while not server.bound:
            assert time.monotonic() < deadline, "did not take the port over after it was freed"
            time.sleep(0.02)
        response = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert response.status_code == 200
        assert "# TYPE mcp_bastion_tool_calls_total counter" in response.text
    finally:
        server.stop()
        holder.close()
