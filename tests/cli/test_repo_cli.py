"""`bastion repo add|sync|list` against a real smart-HTTP remote."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.git_http import serve_git_http
from tests.support.gitrepo import WorkRepo, make_bare_remote
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.repos.registry import Registry


@dataclass
class CliRemote:
    url: str
    work: WorkRepo
    data_dir: Path
    other_url: str


@pytest.fixture(scope="module")
def cli_remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRemote]:
    root = tmp_path_factory.mktemp("cli-remotes")
    remote = make_bare_remote(root, "acme/cli-demo")
    work = WorkRepo(tmp_path_factory.mktemp("cli-work") / "work", remote)
    work.write("README.md", "hello\n")
    work.commit("first", when="2024-01-01T00:00:00+00:00")
    work.push("main")
    other = make_bare_remote(root, "acme/other")
    other_work = WorkRepo(tmp_path_factory.mktemp("cli-other") / "work", other)
    other_work.write("x.txt", "x\n")
    other_work.commit("x", when="2024-01-01T00:00:00+00:00")
    other_work.push("main")
    with serve_git_http(root) as base:
        yield CliRemote(
            f"{base}/acme/cli-demo.git", work, tmp_path_factory.mktemp("cli-data"), f"{base}/acme/other.git"
        )


def _run(remote: CliRemote, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--data-dir", str(remote.data_dir), "repo", *args])
    return result.exit_code, result.output


def test_repo_commands(cli_remote: CliRemote) -> None:
    code, output = _run(cli_remote, "list")
    assert (code, output.strip()) == (0, "no repositories registered (add one with `bastion repo add URL`)")

    head = cli_remote.work.rev("main")
    code, output = _run(cli_remote, "add", cli_remote.url)
    assert code == 0, output
    assert f"added acme/cli-demo (default branch main, head {head[:12]})" in output

    code, output = _run(cli_remote, "add", cli_remote.other_url, "--name", "Team/Other")
    assert code == 0, output
    assert "added Team/Other" in output

    code, output = _run(cli_remote, "list")
    assert code == 0
    demo_row = next(line for line in output.splitlines() if "acme/cli-demo" in line)
    assert "main" in demo_row
    assert head[:12] in demo_row
    synced_at = Registry(cli_remote.data_dir).get("acme/cli-demo").last_sync_at
    assert synced_at is not None
    assert synced_at.strftime("%Y-%m-%d %H:%M:%S") in demo_row
    assert "Team/Other" in output

    cli_remote.work.write("NEW.md", "new\n")
    newer = cli_remote.work.commit("second", when="2024-02-01T00:00:00+00:00")
    cli_remote.work.push("main")
    code, output = _run(cli_remote, "sync", "ACME/cli-demo")
    assert code == 0, output
    assert f"synced acme/cli-demo (head {newer[:12]})" in output
    assert Registry(cli_remote.data_dir).get("acme/cli-demo").head_sha == newer

    code, output = _run(cli_remote, "sync", "--all")
    assert code == 0, output
    assert f"synced acme/cli-demo (head {newer[:12]})" in output
    assert "synced Team/Other" in output


def test_repo_command_errors(cli_remote: CliRemote, tmp_path: Path) -> None:
    remote = CliRemote(cli_remote.url, cli_remote.work, tmp_path / "data", cli_remote.other_url)
    code, output = _run(remote, "add", cli_remote.url.replace("http://", "http://user:secret@"))
    assert code == 1
    assert "credentials come from the configured credential helper" in output
    code, output = _run(remote, "sync")
    assert code == 2
    assert "give a repository name or --all" in output
    code, output = _run(remote, "sync", "acme/unknown")
    assert code == 1
    assert "repository 'acme/unknown' is not registered" in output
    code, output = _run(remote, "add", cli_remote.url, "--name", "acme/x.git")
    assert code == 1
    assert "repository names have no .git suffix: use 'acme/x'" in output
    code, output = _run(remote, "sync", "--all")
    assert (code, output.strip()) == (0, "no repositories registered (add one with `bastion repo add URL`)")
