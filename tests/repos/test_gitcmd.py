"""The git runner: hardened environment, timeouts that kill the whole process group, output caps."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.repos.conftest import Mirrored
from tests.support.gitrepo import WorkRepo

from bastion.errors import Unavailable
from bastion.repos import gitcmd
from bastion.repos.gitcmd import git_argv, run_git

pytestmark = pytest.mark.anyio


@pytest.fixture
def hostile_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Variables a parent process might set to redirect git (the env is computed once, so recompute it)."""
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.pager")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "touch /tmp/pwned")
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", "false")
    gitcmd._base_env.cache_clear()
    yield
    gitcmd._base_env.cache_clear()


def test_environment_is_hardened(hostile_environment: None) -> None:
    env = gitcmd.git_env()
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert env["GIT_LITERAL_PATHSPECS"] == "1"
    assert env["GIT_NO_REPLACE_OBJECTS"] == "1"
    assert env["LC_ALL"] == "C"
    for inherited in ("GIT_DIR", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_EXTERNAL_DIFF"):
        assert inherited not in env


def test_argv_shape(tmp_path: Path) -> None:
    argv = git_argv(tmp_path, ["log", "--", "x"])
    assert argv[1] == f"--git-dir={tmp_path}"
    pairs = {argv[index + 1] for index, item in enumerate(argv) if item == "-c"}
    assert {"protocol.ext.allow=never", "core.quotepath=off", "core.hooksPath=/dev/null"} <= pairs
    assert argv[-4:] == ["--no-pager", "log", "--", "x"]


async def test_inherited_config_is_ignored(hostile_environment: None, mirrored: Mirrored) -> None:
    git_dir = mirrored.settings.mirrors_dir / "acme" / "widgets.git"
    result = await run_git(git_dir, ["config", "--list", "--show-scope"], time_limit=30)
    scopes = {line.split("\t", 1)[0] for line in result.text.splitlines()}
    assert scopes <= {"command", "local"}  # nothing from GIT_CONFIG_*, the system or the user
    assert "core.pager" not in result.text


async def test_failure_names_the_command(mirrored: Mirrored) -> None:
    git_dir = mirrored.settings.mirrors_dir / "acme" / "widgets.git"
    with pytest.raises(Unavailable) as caught:
        await run_git(git_dir, ["cat-file", "-t", "deadbeef" * 5], time_limit=30)
    assert caught.value.message.startswith("git cat-file failed: fatal: ")
    accepted = await run_git(git_dir, ["cat-file", "-e", "deadbeef" * 5], time_limit=30, ok_returncodes=(0, 1, 128))
    assert accepted.returncode != 0


async def test_output_cap_stops_the_command(mirrored: Mirrored) -> None:
    git_dir = mirrored.settings.mirrors_dir / "acme" / "widgets.git"
    blob = f"{mirrored.commits['c5']}:data/big.txt"
    result = await run_git(git_dir, ["cat-file", "-p", blob], time_limit=30, max_output=1000)
    assert result.truncated
    assert result.stdout == ((b"0123456789abcdef" * 4 + b"\n") * 16)[:1000]


async def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    repo = WorkRepo(tmp_path / "repo")
    pid_file = tmp_path / "sleeper.pid"
    hang = f"alias.hang=!sh -c 'echo $$ > {pid_file}; exec sleep 60'"
    with pytest.raises(Unavailable) as caught:
        await run_git(repo.path / ".git", ["hang"], time_limit=1.0, config=(hang,))
    assert caught.value.message == "git hang did not finish within 1 s"
    sleeper = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(sleeper, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(sleeper, 0)  # the grandchild went with the group


async def test_stdin_and_progress_lines(tmp_path: Path) -> None:
    repo = WorkRepo(tmp_path / "repo")
    result = await run_git(repo.path / ".git", ["hash-object", "--stdin"], time_limit=30, stdin=b"hello\n")
    assert result.text.strip() == "ce013625030ba8dba906f756967f9e9ca394464a"
    lines: list[str] = []
    await run_git(
        repo.path / ".git",
        ["hang"],
        time_limit=30,
        config=("alias.hang=!printf 'Phase:  50%%\\rPhase: 100%%\\ndone\\n' >&2",),
        on_stderr_line=lines.append,
    )
    assert lines == ["Phase:  50%", "Phase: 100%", "done"]


def test_a_failure_is_told_by_gits_fatal_line_not_the_tail_of_its_advice() -> None:
    """ssh's failure ends with git's advice, "...and the repository exists.": that line alone told nothing (found
    by a probe)."""
    stderr = (
        "ssh: connect to host 127.0.0.1 port 1: Connection refused\n"
        "fatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\n"
        "and the repository exists.\n"
    )
    assert gitcmd._gist(stderr, 128) == "fatal: Could not read from remote repository."  # pyright: ignore[reportPrivateUsage]
    assert gitcmd._gist("plain complaint\n", 1) == "plain complaint"  # pyright: ignore[reportPrivateUsage]
    assert gitcmd._gist("", 2) == "exit status 2"  # pyright: ignore[reportPrivateUsage]
