"""The ref table: packed-refs parsing, loose refs left by an interrupted sync, reload only on change."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.gitrepo import ALICE, WorkRepo, git

from bastion.repos.catfile import CatFile
from bastion.repos.refs import SYNC_MARKER, RefWatcher, read_ref_files

pytestmark = pytest.mark.anyio


@pytest.fixture
def bare(tmp_path: Path) -> tuple[WorkRepo, Path]:
    work = WorkRepo(tmp_path / "work")
    work.write("a.txt", "one\n")
    work.commit("one", when="2024-01-01T00:00:00+00:00")
    work.tag("v1", message="annotated v1", when="2024-01-02T00:00:00+00:00")
    work.tag("light")
    work.branch("topic")
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(work.path), str(mirror))
    git(mirror, "pack-refs", "--all", "--prune")
    return work, mirror


def test_packed_refs_are_parsed_with_peeling(bare: tuple[WorkRepo, Path]) -> None:
    work, mirror = bare
    targets, peeled, loose, default_branch = read_ref_files(mirror)
    head = work.rev("HEAD")
    assert targets["refs/heads/main"] == head
    assert targets["refs/heads/topic"] == head
    assert targets["refs/tags/v1"] == work.object_id("v1")  # the tag object
    assert peeled["refs/tags/v1"] == head  # its ^ line
    assert "refs/tags/light" not in peeled
    assert loose == set()
    assert default_branch == "main"


async def test_loose_annotated_tag_is_peeled(bare: tuple[WorkRepo, Path]) -> None:
    work, mirror = bare
    env = {"GIT_COMMITTER_NAME": ALICE[0], "GIT_COMMITTER_EMAIL": ALICE[1]}
    git(mirror, "tag", "-a", "v2", "-m", "loose annotated", "main", env=env)  # loose, as after an interrupted sync
    git(mirror, "branch", "loose-branch", "main")
    catfile = CatFile(mirror, timeout=30)
    try:
        watcher = RefWatcher(mirror)
        table = await watcher.load(catfile, watcher.signature())
    finally:
        await catfile.aclose()
    head = work.rev("HEAD")
    assert table.tags == {"v1": head, "light": head, "v2": head}
    assert table.branches == {"main": head, "topic": head, "loose-branch": head}
    assert table.default_branch == "main"


def test_reload_signature(bare: tuple[WorkRepo, Path]) -> None:
    _, mirror = bare
    watcher = RefWatcher(mirror)
    first = watcher.signature()
    watcher._signature = first
    assert watcher.changed() is None
    (mirror / SYNC_MARKER).write_text("synced\n")
    changed = watcher.changed()
    assert changed is not None
    assert changed != first
    watcher._signature = changed
    git(mirror, "symbolic-ref", "HEAD", "refs/heads/topic")
    assert watcher.changed() is not None
    assert read_ref_files(mirror)[3] == "topic"


def test_detached_or_missing_head(tmp_path: Path) -> None:
    assert read_ref_files(tmp_path) == ({}, {}, set(), None)
    (tmp_path / "HEAD").write_text("0123456789abcdef0123456789abcdef01234567\n")
    assert read_ref_files(tmp_path)[3] is None
