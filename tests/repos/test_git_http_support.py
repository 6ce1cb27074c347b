"""The smart-HTTP test remote itself: clone, push and fetch over protocol v2, optional basic auth."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.git_http import serve_git_http
from tests.support.gitrepo import WorkRepo, git, make_bare_remote


def test_clone_push_fetch(tmp_path: Path) -> None:
    root = tmp_path / "remotes"
    make_bare_remote(root, "acme/http")
    with serve_git_http(root) as base:
        url = f"{base}/acme/http.git"
        author = WorkRepo(tmp_path / "author", url)
        author.write("a.txt", "a\n")
        first = author.commit("first", when="2024-01-01T00:00:00+00:00")
        author.push("main")  # push over HTTP (receive-pack)
        git(tmp_path, "-c", "protocol.version=2", "clone", "--quiet", "--mirror", url, "clone.git")
        assert git(tmp_path / "clone.git", "rev-parse", "main") == first
        author.write("b.txt", "b\n")
        second = author.commit("second", when="2024-01-02T00:00:00+00:00")
        author.push("main")
        git(tmp_path / "clone.git", "fetch", "--quiet", "origin")
        assert git(tmp_path / "clone.git", "rev-parse", "main") == second


def test_basic_auth_required(tmp_path: Path) -> None:
    root = tmp_path / "remotes"
    make_bare_remote(root, "acme/private")
    with serve_git_http(root, credentials=("x-access-token", "s3cret")) as base:
        with pytest.raises(RuntimeError, match=r"Authentication failed|could not read Username|401"):
            git(tmp_path, "ls-remote", f"{base}/acme/private.git")
        good = base.replace("http://", "http://x-access-token:s3cret@")
        assert git(tmp_path, "ls-remote", f"{good}/acme/private.git") == ""  # empty repository, but allowed
