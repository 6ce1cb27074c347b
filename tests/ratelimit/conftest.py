"""A real redis-server for the session, and the storage parameter that runs a test against memory and Redis."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from tests.support.redis_server import RedisServer, redis_server


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Generator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def storage_url(request: pytest.FixtureRequest) -> str:
    """memory:// or the session's Redis, emptied first so no test sees another's counters."""
    if request.param == "memory":
        return "memory://"
    server: RedisServer = request.getfixturevalue("redis")
    assert server.command("FLUSHALL").startswith(b"+OK")
    return server.url
