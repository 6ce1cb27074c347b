"""Bootstrap: the listed repositories are mirrored from a real smart-HTTP remote when missing, registered ones are
left alone, failures are reported (for /ready) and retried until they succeed, bad entries refuse to start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.support.git_http import serve_git_http
from tests.support.gitrepo import WorkRepo, make_bare_remote

from bastion.config import RepoBootstrapEntry, RepoSettings, Settings
from bastion.errors import ConfigError
from bastion.repos.bootstrap import Bootstrap, BootstrapEntry, bootstrap_entries
from bastion.repos.registry import Registry, new_record

pytestmark = pytest.mark.anyio


def _remote(root: Path, work: Path, name: str) -> str:
    author = WorkRepo(work / name.replace("/", "-"), make_bare_remote(root, name))
    author.write("README.md", f"{name}\n")
    head = author.commit("first", when="2026-01-01T00:00:00+00:00")
    author.push("main")
    return head


def _settings(data_dir: Path, entries: list[tuple[str, str | None]]) -> Settings:
    bootstrap = [RepoBootstrapEntry(url=url, name=name) for url, name in entries]
    return Settings(data_dir=data_dir, repos=RepoSettings(bootstrap=bootstrap))


async def test_missing_repositories_are_mirrored_and_registered_ones_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "remotes"
    heads = {name: _remote(root, tmp_path, name) for name in ("acme/api", "acme/web")}
    with serve_git_http(root) as base:
        settings = _settings(
            tmp_path / "data",
            [(f"{base}/acme/api.git", "acme/api"), (f"{base}/acme/web.git", None), (f"{base}/acme/old.git", None)],
        )
        registry = Registry(settings.data_dir, check_interval=0)
        registry.add(new_record("acme/old", f"{base}/acme/old.git", "main"))  # mirrored at an earlier start
        bootstrap = Bootstrap(settings, bootstrap_entries(settings))
        assert bootstrap.problem() == "mirroring at start: 3 of 3 not ready yet (acme/api, acme/old, acme/web)"
        await bootstrap.run()
    assert bootstrap.problem() is None
    assert {record.name: record.head_sha for record in registry.records()} == {
        "acme/api": heads["acme/api"],
        "acme/old": None,  # untouched: the scheduled sync keeps registered repositories fresh
        "acme/web": heads["acme/web"],
    }


async def test_a_failure_is_reported_and_retried_until_it_succeeds(tmp_path: Path) -> None:
    root = tmp_path / "remotes"
    root.mkdir()
    with serve_git_http(root) as base:
        settings = _settings(tmp_path / "data", [(f"{base}/acme/late.git", None)])
        bootstrap = Bootstrap(settings, bootstrap_entries(settings), retry_first=0.05, retry_max=0.2)
        task = asyncio.create_task(bootstrap.run())
        async with asyncio.timeout(60):
            while not bootstrap.failures:  # noqa: ASYNC110 - the background task's first failure, seen from outside
                await asyncio.sleep(0.02)
        problem = bootstrap.problem()
        assert problem is not None
        assert problem.startswith("mirroring at start: 1 of 1 not ready yet (acme/late); 1 failed, e.g. acme/late: ")
        assert not task.done()
        head = _remote(root, tmp_path, "acme/late")  # the repository appears (or the App key is put in place)
        async with asyncio.timeout(60):
            await task
    assert bootstrap.problem() is None
    assert Registry(settings.data_dir).get("acme/late").head_sha == head


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://user:pw@github.com/acme/api.git",
            r"BASTION_REPOS__BOOTSTRAP\[0\]: repository URL contains credentials",
        ),
        ("https://github.com/api.git", r"BASTION_REPOS__BOOTSTRAP\[0\]: cannot derive 'owner/repo'"),
        ("ext::sh -c evil", r"BASTION_REPOS__BOOTSTRAP\[0\]: repository URL contains whitespace"),
    ],
)
def test_bad_entries_refuse_to_start(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        bootstrap_entries(_settings(tmp_path, [(url, None)]))


def test_entries_are_named_from_the_url_and_deduplicated(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        [("https://github.com/acme/api.git", None), ("https://github.com/Acme/API.git", None), ("/srv/x/y.git", "o/y")],
    )
    assert bootstrap_entries(settings) == [
        BootstrapEntry("acme/api", "https://github.com/acme/api.git"),
        BootstrapEntry("o/y", "/srv/x/y.git"),
    ]
