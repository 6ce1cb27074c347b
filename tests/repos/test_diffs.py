"""Parsing `git diff-tree -z --raw --numstat -p` from real git: odd file names, type changes, truncation."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.gitrepo import WorkRepo

from bastion.repos.diffs import DIFF_TREE_ARGS, parse_diff_tree, quote_git_path
from bastion.repos.gitcmd import GitResult, run_git
from bastion.repos.types import FileDiff

pytestmark = pytest.mark.anyio

ODD_NAMES = ["with space.txt", 'quo"te.txt', "tab\there.txt", "back\\slash.txt", "ünïcode.txt", "new\nline.txt"]


@pytest.fixture
def changes(tmp_path: Path) -> tuple[WorkRepo, str, str]:
    work = WorkRepo(tmp_path / "work")
    work.write("plain.txt", "a\nb\n")
    work.write("becomes-link", "was a file\n")
    work.write("move-me.txt", "line 1\nline 2\nline 3\nline 4\n")
    work.write("gone.txt", "bye\n")
    before = work.commit("before", when="2024-01-01T00:00:00+00:00")
    for name in ODD_NAMES:
        work.write(name, f"content of {name!r}\n")
    work.write("plain.txt", "a\nB\n")
    work.symlink("becomes-link", "plain.txt")
    work.move("move-me.txt", "moved.txt")
    work.remove("gone.txt")
    work.write("image.bin", bytes(range(256)))
    after = work.commit("after", when="2024-01-02T00:00:00+00:00")
    return work, before, after


async def _raw(work: WorkRepo, before: str, after: str, *, patch: bool, cap: int | None = None) -> GitResult:
    args = [*DIFF_TREE_ARGS, *(["-p"] if patch else []), before, after, "--"]
    return await run_git(work.path / ".git", args, time_limit=30, max_output=cap)


async def _diff(work: WorkRepo, before: str, after: str, *, patch: bool, cap: int | None = None) -> list[FileDiff]:
    result = await _raw(work, before, after, patch=patch, cap=cap)
    return parse_diff_tree(result.stdout, with_patch=patch, complete=not result.truncated)


async def test_every_kind_of_change(changes: tuple[WorkRepo, str, str]) -> None:
    files = {diff.path: diff for diff in await _diff(*changes, patch=True)}
    assert sorted(files) == sorted(["plain.txt", "becomes-link", "moved.txt", "gone.txt", "image.bin", *ODD_NAMES])
    assert (files["plain.txt"].status, files["plain.txt"].additions, files["plain.txt"].deletions) == ("modified", 1, 1)
    assert files["plain.txt"].patch == "@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
    moved = files["moved.txt"]
    assert (moved.status, moved.old_path, moved.additions, moved.deletions, moved.patch) == (
        "renamed",
        "move-me.txt",
        0,
        0,
        "",
    )
    assert (files["gone.txt"].status, files["gone.txt"].deletions) == ("deleted", 1)
    assert files["gone.txt"].patch == "@@ -1 +0,0 @@\n-bye\n"
    assert (files["image.bin"].binary, files["image.bin"].patch) == (True, None)
    link = files["becomes-link"]
    assert link.status == "type_changed"
    # git prints a type change as a deletion and a creation; both halves belong to the one file
    assert link.patch == "@@ -1 +0,0 @@\n-was a file\n@@ -0,0 +1 @@\n+plain.txt\n\\ No newline at end of file\n"
    for name in ODD_NAMES:
        assert (files[name].status, files[name].additions) == ("added", 1), name
        assert files[name].patch == f"@@ -0,0 +1 @@\n+content of {name!r}\n", name


async def test_stats_only(changes: tuple[WorkRepo, str, str]) -> None:
    files = await _diff(*changes, patch=False)
    assert all(diff.patch is None for diff in files)
    assert len(files) == 5 + len(ODD_NAMES)


async def test_truncated_output_drops_incomplete_patches(changes: tuple[WorkRepo, str, str]) -> None:
    full = await _diff(*changes, patch=True)
    size = len((await _raw(*changes, patch=True)).stdout)
    cut = await _diff(*changes, patch=True, cap=size - 200)  # the last patches are cut off
    assert [diff.path for diff in cut] == [diff.path for diff in full]  # stats survive
    with_patch = [diff for diff in cut if diff.patch is not None]
    assert 0 < len(with_patch) < len([diff for diff in full if diff.patch is not None])
    for diff in with_patch:  # whatever is returned is complete
        assert diff.patch == next(other.patch for other in full if other.path == diff.path)


async def test_two_files_with_the_same_patch_header_keep_their_own_lines(tmp_path: Path) -> None:
    """`a/.env b/v b/.env b/v` is the header of both `.env b/v` changed in place and `.env b/v b/.env` renamed to
    `v`: paired by header alone, the first file carried the second one's lines (a denied file's, here)."""
    work = WorkRepo(tmp_path / "work")
    work.write(".env b/v", "open line 1\nopen line 2\n")
    work.write(".env b/v b/.env", "DENIED-1\nDENIED-2\nDENIED-3\nDENIED-4\nDENIED-5\n")
    before = work.commit("before", when="2024-01-01T00:00:00+00:00")
    work.write(".env b/v", "open line 1\nopen line two\n")
    work.move(".env b/v b/.env", "v")
    work.write("v", "DENIED-1\nDENIED-2\nDENIED-3\nDENIED-4\nDENIED-FIVE\n")
    after = work.commit("after", when="2024-01-02T00:00:00+00:00")
    files = {f.path: f for f in parse_diff_tree((await _raw(work, before, after, patch=True)).stdout, with_patch=True)}
    assert files[".env b/v"].patch == "@@ -1,2 +1,2 @@\n open line 1\n-open line 2\n+open line two\n"
    assert (files["v"].status, files["v"].old_path) == ("renamed", ".env b/v b/.env")
    assert "+DENIED-FIVE" in (files["v"].patch or "")


def test_quoting_matches_git() -> None:
    assert quote_git_path(b"a/plain.txt") == b"a/plain.txt"
    assert quote_git_path(b"a/with space.txt") == b"a/with space.txt"
    assert quote_git_path(b'a/quo"te') == b'"a/quo\\"te"'
    assert quote_git_path(b"a/tab\there") == b'"a/tab\\there"'
    assert quote_git_path(b"a/\x01x") == b'"a/\\001x"'
    assert quote_git_path("a/ü".encode()) == "a/ü".encode()  # core.quotepath=off


def test_garbage_is_not_a_crash() -> None:
    assert parse_diff_tree(b":100644 100644 abc", with_patch=True) == []
    assert parse_diff_tree(b"", with_patch=True) == []
