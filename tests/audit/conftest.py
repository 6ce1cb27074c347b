"""Audit fixtures: one real PostgreSQL server and one real moto_server for the session (started and stopped
here), a fresh database per test that asks for one."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from tests.support.moto import AWS_TEST_ENV, MotoServer, moto_server
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
    saved = {name: os.environ.get(name) for name in AWS_TEST_ENV}
    os.environ.update(AWS_TEST_ENV)
    try:
        with moto_server(tmp_path_factory.mktemp("moto")) as server:
            yield server
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
