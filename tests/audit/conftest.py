"""Audit fixtures: one real PostgreSQL server and one real moto_server for the session (started and stopped
here), a fresh database per test that asks for one."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from tests.support.moto import MotoServer, moto_with_fake_credentials
from tests.support.postgres import PostgresServer, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Generator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    return postgres.create_database()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Generator[MotoServer]:
    """A real moto_server for CloudWatch Logs, with fake credentials in the environment while it runs."""
    with moto_with_fake_credentials(tmp_path_factory.mktemp("moto")) as server:
        yield server
