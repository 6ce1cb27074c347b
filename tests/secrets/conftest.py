"""Secrets fixtures: one real moto_server for the module's Secrets Manager and KMS calls (fake credentials in the
environment while it runs); tests that kill it start their own."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from tests.support.moto import AWS_TEST_ENV, MotoServer, moto_server


@pytest.fixture(scope="session")
def aws_env() -> Generator[None]:
    saved = {name: os.environ.get(name) for name in AWS_TEST_ENV}
    os.environ.update(AWS_TEST_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory, aws_env: None) -> Generator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto-secrets")) as server:
        yield server
