"""End-to-end fixtures. One deployment is shared by the session (reads, denials, bad input, audit); tests that
change what a shared deployment cannot take back (pushing new commits) build their own with `deploy()`."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
from tests.e2e.helpers import ERAS, Deployment, deploy
from tests.support.git_http import serve_git_http

from bastion.demo_repos import build_demo_repositories


@pytest.fixture(scope="session")
def demo_origins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_demo_repositories(tmp_path_factory.mktemp("origin"))


@pytest.fixture(scope="session")
def git_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def git_url(git_root: Path) -> Generator[str]:
    with serve_git_http(git_root) as url:
        yield url


@pytest.fixture(scope="session")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, demo_origins: dict[str, Path], git_root: Path, git_url: str
) -> Generator[Deployment]:
    with deploy(tmp_path_factory.mktemp("shared"), demo_origins, git_root, git_url) as running:
        yield running


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return request.param
