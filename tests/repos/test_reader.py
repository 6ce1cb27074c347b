"""Reads through the caches: a cached read answers exactly what an uncached one does (truncation and full size
included), needs no cat-file at all, and the blob cache keeps to its configuration."""

from __future__ import annotations

import pytest
from tests.repos.conftest import REPO, Mirrored
from tests.support.gitrepo import git

from bastion.errors import Unavailable
from bastion.repos.mirror import MirrorBackend
from bastion.repos.reader import MAX_CACHED_BLOB
from bastion.repos.registry import Registry
from bastion.repos.types import Blob, TreeEntry

pytestmark = pytest.mark.anyio


def _backend(mirrored: Mirrored, blob_cache_bytes: int | None = None) -> MirrorBackend:
    settings = mirrored.settings
    if blob_cache_bytes is not None:
        repos = settings.repos.model_copy(update={"blob_cache_bytes": blob_cache_bytes})
        settings = settings.model_copy(update={"repos": repos})
    return MirrorBackend(settings, registry=Registry(settings.data_dir, check_interval=0))


def _files(mirrored: Mirrored, label: str) -> dict[str, int]:
    """path -> size of every blob at a commit (symlinks included; the submodule is not a blob)."""
    sha = mirrored.commits[label]
    files: dict[str, int] = {}
    for line in git(mirrored.sample.work.path, "ls-tree", "-r", "-l", sha).splitlines():
        meta, path = line.split("\t")
        _mode, kind, _oid, size = meta.split()
        if kind == "blob":
            files[path] = int(size)
    return files


async def test_cached_reads_equal_uncached_reads(mirrored: Mirrored) -> None:
    async with _backend(mirrored, blob_cache_bytes=0) as uncached, _backend(mirrored) as cached:
        compared = 0
        for label in ("c1", "c3", "c5"):
            commit = mirrored.commits[label]
            for path, size in _files(mirrored, label).items():
                for max_bytes in sorted({0, 1, 10, max(size - 1, 0), size, size + 1, 1_000_000}):
                    expected = await uncached.read_blob(REPO, commit, path, max_bytes)
                    first = await cached.read_blob(REPO, commit, path, max_bytes)
                    again = await cached.read_blob(REPO, commit, path, max_bytes)
                    assert isinstance(expected, Blob)
                    assert expected.size == size, path
                    assert len(expected.data) == min(size, max_bytes), path
                    assert first == again == expected, (label, path, max_bytes)
                    compared += 1
        assert compared > 100
        assert len(uncached.blobs) == 0  # a budget of 0 keeps nothing
        kept = sum(1 for size in _files(mirrored, "c5").values() if size <= MAX_CACHED_BLOB)
        assert len(cached.blobs) >= kept  # data/big.txt (650,000 bytes) is read, never kept
        assert cached.blobs.total <= cached.settings.repos.blob_cache_bytes


async def test_hot_reads_need_no_cat_file(mirrored: Mirrored) -> None:
    """Once read, a file at a commit (and the branch it came from) is served from memory: with the cat-file
    process closed, it still answers, while anything not read before cannot be."""
    c5 = mirrored.commits["c5"]
    async with _backend(mirrored) as backend:
        head = await backend.resolve(REPO, "main")
        readme = await backend.read_blob(REPO, c5, "README.md", 1000)
        listing = await backend.read_blob(REPO, c5, "src", 1000)
        handle = backend.handle(REPO)
        await handle.catfile.aclose()
        assert await backend.resolve(REPO, "main") is head
        assert await backend.read_blob(REPO, c5, "README.md", 1000) == readme
        assert isinstance(readme, Blob)
        assert await backend.read_blob(REPO, c5, "./README.md", 4) == Blob("README.md", readme.oid, 52, b"# Wi")
        assert await backend.read_blob(REPO, c5, "src", 1000) == listing
        assert isinstance(listing, list)
        assert all(isinstance(entry, TreeEntry) for entry in listing)
        with pytest.raises(Unavailable, match="is closed"):
            await backend.read_blob(REPO, c5, "src/util/helpers.py", 1000)
