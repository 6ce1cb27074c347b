"""Fixtures shared by the whole suite. Async tests use anyio's pytest plugin on asyncio."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bastion.auth.keys import KeyStore
from bastion.config import Settings
from bastion.store.db import open_state
from tests.support.redis_server import RedisServer, redis_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- a real state store in a temporary data dir (API key tests) ----------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_state(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> KeyStore:
    return KeyStore(engine)


# -- a real redis-server for the session, and the storage parameter that runs a test on memory and Redis ------


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
