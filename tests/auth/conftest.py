"""A real state store in a temporary data dir for the key tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bastion.auth.keys import KeyStore
from bastion.config import Settings
from bastion.store.db import open_state


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
