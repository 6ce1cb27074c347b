"""Fixtures for the data-plane tests: one sample repository served over smart HTTP and mirrored once per
session (read-only tests share it); tests that sync or mutate build their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.git_http import serve_git_http
from tests.support.gitrepo import SampleRepository, build_sample_repository

from bastion.config import Settings
from bastion.repos.mirror import MirrorBackend
from bastion.repos.registry import Registry
from bastion.repos.sync import add_repository

REPO = "acme/widgets"


@dataclass
class Mirrored:
    settings: Settings
    sample: SampleRepository
    url: str

    @property
    def commits(self) -> dict[str, str]:
        return self.sample.commits


@pytest.fixture(scope="session")
def git_http_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("remotes")


@pytest.fixture(scope="session")
def git_http_url(git_http_root: Path) -> Iterator[str]:
    with serve_git_http(git_http_root) as url:
        yield url


@pytest.fixture(scope="session")
def mirrored(tmp_path_factory: pytest.TempPathFactory, git_http_root: Path, git_http_url: str) -> Mirrored:
    """The sample repository, mirrored from the smart-HTTP remote into a fresh data dir. Read-only tests only."""
    sample = build_sample_repository(tmp_path_factory.mktemp("sample"), remote_root=git_http_root, name=REPO)
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    asyncio.run(add_repository(settings, f"{git_http_url}/{REPO}.git"))
    return Mirrored(settings=settings, sample=sample, url=f"{git_http_url}/{REPO}.git")


@pytest.fixture
async def backend(mirrored: Mirrored) -> AsyncIterator[MirrorBackend]:
    async with MirrorBackend(mirrored.settings, registry=Registry(mirrored.settings.data_dir, check_interval=0)) as b:
        yield b
