"""Secrets fixtures: one real moto_server for the module's Secrets Manager and KMS calls (fake credentials in the
environment while it runs); tests that kill it start their own."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from tests.support.moto import MotoServer, fake_aws_credentials, moto_server


@pytest.fixture(scope="session")
def aws_env() -> Generator[None]:
    with fake_aws_credentials():
        yield


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory, aws_env: None) -> Generator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto-secrets")) as server:
        yield server
