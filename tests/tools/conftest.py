"""The sample repository (tests/support/gitrepo.py), mirrored once per session from a file:// remote, for the
tool-layer tests. Read-only: tests that need another repository build their own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.gitrepo import SampleRepository, build_sample_repository

from bastion.config import Settings
from bastion.policy.loader import PolicyFile
from bastion.principal import Principal
from bastion.repos.mirror import MirrorBackend
from bastion.repos.registry import Registry
from bastion.repos.sync import add_repository
from bastion.services import Services
from bastion.tools.access import Access
from bastion.tools.call import ToolCall

REPO = "acme/widgets"


@dataclass
class Widgets:
    settings: Settings
    sample: SampleRepository

    @property
    def commits(self) -> dict[str, str]:
        return self.sample.commits


@pytest.fixture(scope="session")
def widgets(tmp_path_factory: pytest.TempPathFactory) -> Widgets:
    sample = build_sample_repository(
        tmp_path_factory.mktemp("widgets-work"), remote_root=tmp_path_factory.mktemp("widgets-remote"), name=REPO
    )
    settings = Settings(data_dir=tmp_path_factory.mktemp("widgets-data"))
    asyncio.run(add_repository(settings, sample.remote.resolve().as_uri(), name=REPO))
    return Widgets(settings=settings, sample=sample)


@pytest.fixture
async def backend(widgets: Widgets) -> AsyncIterator[MirrorBackend]:
    async with MirrorBackend(widgets.settings, registry=Registry(widgets.settings.data_dir, check_interval=0)) as b:
        yield b


def write_policy(directory: Path, text: str) -> Path:
    path = directory / "policy.yaml"
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def alice_calling(settings: Settings, policy: Path, tool: str) -> AsyncGenerator[ToolCall]:
    """A ToolCall of `tool` by alice, on a real mirror backend and policy file (events are not kept)."""
    async with MirrorBackend(settings) as backend:
        access = Access(PolicyFile(policy), backend)
        services = Services(settings=settings, backend=backend, access=access, record=lambda event: None)
        yield ToolCall(services, Principal("alice"), tool)
