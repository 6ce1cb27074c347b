"""Git over HTTP(S) with the App's installation token through the credential helper, against a real smart-HTTP
remote that requires the token: the mirror syncs, a revoked token is replaced after git's 401, and the token is in
no config file, no argument list (ours, git's children as GIT_TRACE records them, any process seen in /proc while
git ran) and no log (DEBUG records, the git trace)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import pytest
from tests.github.conftest import MakeCredentials, app_settings, git_server
from tests.support.github_stub import GitHubAppStub
from tests.support.gitrepo import WorkRepo, git, make_bare_remote

import bastion.repos.sync as sync_module
from bastion.config import GitHubSettings, Settings
from bastion.errors import Unavailable
from bastion.github.git_auth import HELPER_SCRIPT, GitRemoteAuth, helper_config, is_auth_failure
from bastion.github.git_credential_helper import answer
from bastion.repos.gitcmd import GitResult, git_argv, git_env
from bastion.repos.registry import mirror_path
from bastion.repos.sync import add_repository, sync_repository

HELPER_ENV = {
    "BASTION_GIT_TOKEN": "tok-123",
    "BASTION_GIT_USERNAME": "x-access-token",
    "BASTION_GIT_PROTOCOL": "https",
    "BASTION_GIT_HOST": "github.com",
}


class ProcScanner:
    """Collects the command line of every process visible in /proc, over and over, while the block runs."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._scan, daemon=True)

    def _scan(self) -> None:
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as handle:
                        self.seen.add(handle.read().replace(b"\0", b" ").decode("utf-8", "replace"))
            self.passes += 1

    def __enter__(self) -> ProcScanner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_the_helper_answers_get_only_for_the_named_protocol_and_host() -> None:
    good = {"protocol": "https", "host": "github.com"}
    assert answer("get", good, HELPER_ENV) == "username=x-access-token\npassword=tok-123\n"
    assert answer("get", {"protocol": "https", "host": "GitHub.com"}, HELPER_ENV).endswith("password=tok-123\n")
    assert answer("get", {"protocol": "https", "host": "evil.example"}, HELPER_ENV) == ""
    assert answer("get", {"protocol": "http", "host": "github.com"}, HELPER_ENV) == ""
    assert answer("store", {**good, "password": "tok-123"}, HELPER_ENV) == ""
    assert answer("erase", good, HELPER_ENV) == ""
    assert answer("get", good, {**HELPER_ENV, "BASTION_GIT_TOKEN": ""}) == ""
    assert answer("get", good, {**HELPER_ENV, "BASTION_GIT_TOKEN": "a\nquit=1"}) == ""


@pytest.mark.parametrize(("host", "expected"), [("github.com", True), ("evil.example", False)])
def test_git_itself_runs_the_helper(host: str, expected: bool) -> None:
    """`git credential fill` with our config and environment: what git-remote-https does before it retries."""
    argv = git_argv(None, ["credential", "fill"], config=helper_config())
    assert not any("tok-123" in arg for arg in argv)
    assert any(str(HELPER_SCRIPT) in arg for arg in argv)
    result = subprocess.run(
        argv,
        input=f"protocol=https\nhost={host}\n\n".encode(),
        env=git_env(HELPER_ENV),
        capture_output=True,
        check=False,
    )
    if expected:
        assert result.returncode == 0, result.stderr
        assert "password=tok-123" in result.stdout.decode()
    else:  # no credential and prompts disabled: git gives up without one
        assert result.returncode != 0
        assert b"tok-123" not in result.stdout + result.stderr


def test_auth_failures_are_recognised() -> None:
    assert is_auth_failure("git fetch failed: fatal: Authentication failed for 'https://github.com/a/b.git/'")
    assert is_auth_failure("git ls-remote failed: fatal: unable to access '...': The requested URL returned error: 401")
    assert not is_auth_failure("git fetch failed: fatal: unable to access '...': Could not resolve host: github.com")


@pytest.mark.anyio
async def test_mirror_sync_uses_the_app_token_through_the_helper_and_leaks_it_nowhere(
    tmp_path: Path,
    stub: GitHubAppStub,
    make_credentials: MakeCredentials,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "remotes"
    author = WorkRepo(tmp_path / "author", make_bare_remote(root, "acme/widgets"))
    author.write("README.md", "hello\n")
    author.commit("first", when="2026-01-01T00:00:00+00:00")
    author.push("main")
    first_token, second_token = f"ghs_{token_urlsafe(27)}", f"ghs_{token_urlsafe(27)}"
    stub.queued_tokens[:] = [first_token, second_token]

    argvs: list[list[str]] = []
    envs: list[dict[str, str]] = []
    trace = tmp_path / "git-trace.log"
    real_run_git = sync_module.run_git

    async def recording_run_git(git_dir: Path | None, args: list[str], **options: Any) -> GitResult:
        """The real runner, with every argv and environment noted and git's own trace of its children on."""
        argvs.append(git_argv(git_dir, args, config=options.get("config", ())))
        env = {**(options.pop("env", None) or {}), "GIT_TRACE": str(trace)}
        envs.append(env)
        return await real_run_git(git_dir, args, env=env, **options)

    monkeypatch.setattr(sync_module, "run_git", recording_run_git)
    data_dir = tmp_path / "data"
    with git_server(root, ("x-access-token", first_token)) as server:
        settings = Settings(data_dir=data_dir, github=GitHubSettings(web_url=server.base_url))
        auth = GitRemoteAuth(make_credentials(), server.base_url)
        url = f"{server.base_url}/acme/widgets.git"
        with ProcScanner() as scanner:
            added = await add_repository(settings, url, auth=auth)
            # GitHub revokes the first token; only a newly minted one works from now on.
            author.write("NEWS.md", "second\n")
            second_head = author.commit("second", when="2026-01-02T00:00:00+00:00")
            author.push("main")
            stub.revoke(first_token)
            server.credentials = ("x-access-token", second_token)
            synced = await sync_repository(settings, "acme/widgets", auth=auth)

    assert added.head_sha != second_head
    assert synced.head_sha == second_head
    assert [item.token for item in stub.minted("acme")] == [first_token, second_token]
    assert "GitHub rejected the token of acme for git; getting a new one and retrying once" in caplog.text
    # Positive controls: the helper was what supplied the token, and git's trace and our records are complete.
    trace_text = trace.read_text()
    assert str(HELPER_SCRIPT) in trace_text
    assert any(env.get("BASTION_GIT_TOKEN") == second_token for env in envs)
    assert any("credential.helper=" in argv for argv in argvs)
    assert scanner.passes > 0

    mirror = mirror_path(data_dir, "acme/widgets")
    config_text = git(mirror, "config", "--list", "--show-origin")
    assert url in config_text
    for token in (first_token, second_token):
        assert token not in config_text
        assert token not in caplog.text
        assert token not in trace_text
        assert not [argv for argv in argvs if any(token in arg for arg in argv)]
        assert not [command for command in scanner.seen if token in command]
        leaked = [path for path in data_dir.rglob("*") if path.is_file() and token.encode() in path.read_bytes()]
        assert leaked == []


@pytest.mark.anyio
async def test_without_a_token_the_remote_refuses_and_git_says_why(
    tmp_path: Path, stub: GitHubAppStub, make_credentials: MakeCredentials
) -> None:
    root = tmp_path / "remotes"
    make_bare_remote(root, "initech/api")
    with git_server(root, ("x-access-token", "something-else")) as server:
        settings = Settings(data_dir=tmp_path / "data", github=GitHubSettings(web_url=server.base_url))
        auth = GitRemoteAuth(make_credentials(), server.base_url)  # the App is not installed on initech, no PAT
        with pytest.raises(Unavailable, match=r"cannot mirror initech/api .*(could not read Username|Authentication)"):
            await add_repository(settings, f"{server.base_url}/initech/api.git", auth=auth)


@pytest.mark.anyio
async def test_bastion_repo_add_builds_the_credentials_from_the_settings(
    tmp_path: Path, stub: GitHubAppStub, secrets_dir: Path
) -> None:
    """What `bastion repo add/sync` does: no shared credentials passed in, the settings name the App and the key."""
    root = tmp_path / "remotes"
    author = WorkRepo(tmp_path / "author", make_bare_remote(root, "globex/tools"))
    author.write("a.txt", "a\n")
    head = author.commit("first", when="2026-01-01T00:00:00+00:00")
    author.push("main")
    token = f"ghs_{token_urlsafe(27)}"
    stub.queued_tokens[:] = [token]
    with git_server(root, ("x-access-token", token)) as server:
        settings = app_settings(tmp_path / "data", secrets_dir, stub.url, server.base_url)
        info = await add_repository(settings, f"{server.base_url}/globex/tools.git")
    assert info.head_sha == head
    assert [item.token for item in stub.minted("globex")] == [token]
