"""The ref table: packed-refs parsing, loose refs left by an interrupted sync, reload only on change, the cheap
per-request check, remembered resolutions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.support.gitrepo import ALICE, WorkRepo, git

from bastion.errors import Unavailable
from bastion.repos.cache import LRU
from bastion.repos.catfile import CatFile
from bastion.repos.refs import SYNC_MARKER, RefWatcher, read_ref_files, resolve_ref

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


async def test_current_checks_the_marker_each_loop_iteration_and_the_rest_on_an_interval(
    bare: tuple[WorkRepo, Path],
) -> None:
    """The request path's check: a sync (which always replaces the marker last) is seen from the next event-loop
    iteration on, so by any request sent after it ended; HEAD or packed-refs changed without the marker only once
    `full_check_interval` has passed."""
    _, mirror = bare
    (mirror / SYNC_MARKER).write_text("synced\n")
    catfile = CatFile(mirror, timeout=30)
    try:
        patient = RefWatcher(mirror, full_check_interval=3600)
        eager = RefWatcher(mirror, full_check_interval=0)
        assert patient.current() is None  # nothing loaded yet
        for watcher in (patient, eager):
            await watcher.load(catfile, watcher.signature())
            watcher.changed()  # starts the interval
        table = patient.current()
        assert table is not None
        assert table.default_branch == "main"
        git(mirror, "symbolic-ref", "HEAD", "refs/heads/topic")  # by hand, no marker
        assert patient.current() is table  # within the interval: not looked at
        assert patient.changed() is not None  # ... but the full check sees it
        assert eager.current() is None  # no interval: seen at once
        temp = mirror / "marker.tmp"
        temp.write_text("synced again\n")
        temp.replace(mirror / SYNC_MARKER)  # what a sync does last
        assert patient.current() is table  # this iteration's look at the marker was taken before the sync ended
        await asyncio.sleep(0)
        assert patient.current() is None
    finally:
        await catfile.aclose()


async def test_resolutions_are_remembered_per_table(bare: tuple[WorkRepo, Path]) -> None:
    work, mirror = bare
    catfile = CatFile(mirror, timeout=30)
    try:
        watcher = RefWatcher(mirror)
        table = await watcher.load(catfile, watcher.signature())
        seen: LRU[str, bool] = LRU(16)
        first = await resolve_ref("acme/x", table, "v1", catfile, seen)
        assert (first.kind, first.full_name, first.sha) == ("tag", "refs/tags/v1", work.rev("HEAD"))
        assert table.resolved == {"v1": first}
        await catfile.aclose()  # a remembered name needs no cat-file
        assert await resolve_ref("acme/x", table, "v1", catfile, seen) is first
        with pytest.raises(Unavailable, match="is closed"):
            await resolve_ref("acme/x", table, "topic", catfile, LRU(16))  # not remembered: asks cat-file
        assert await watcher.load(CatFile(mirror, timeout=30), watcher.signature()) is not table
        assert watcher.table is not None
        assert watcher.table.resolved == {}  # a reload starts afresh
    finally:
        await catfile.aclose()
