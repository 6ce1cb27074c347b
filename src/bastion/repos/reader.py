"""Files and directories at a commit, read through the repository's cat-file process.

A path is found by walking trees from the commit's root tree. Everything here is addressed by a SHA and so never
changes: parsed trees and commits are cached by oid, the entry found at `(commit, path)` is cached, and so are the
contents of blobs up to `MAX_CACHED_BLOB` (in a byte budget shared by every mirror of the server). A repeated read
of a hot file is therefore two dictionary lookups and no pipe round trip; a first read of a file costs one round
trip for its size (`info`) and one for its bytes (`contents`). The tree entry gives the mode, which is how
symlinks (120000) and submodules (160000) are told apart from files. A blob much larger than what was asked is
read by a one-shot `git cat-file blob` that is stopped after `max_bytes`, so the shared process never has to drain
a huge object.

The caches belong to one mirror as it exists on disk: `reset()` (called when the mirror was re-created from
scratch) replaces them, and a read that started before keeps writing into the caches it started with, which are
then dropped.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bastion.errors import NotFound, Unavailable
from bastion.repos.cache import LRU, ByteLRU
from bastion.repos.catfile import CatFile
from bastion.repos.gitcmd import kill_process_tree, spawn_git
from bastion.repos.objects import RawTreeEntry, parse_commit, parse_tree
from bastion.repos.types import CommitSummary

__all__ = ["DEFAULT_BLOB_CACHE_BYTES", "LARGE_BLOB_SLACK", "MAX_CACHED_BLOB", "ROOT_MODE", "ObjectReader"]

ROOT_MODE = "040000"
# Reading (and discarding) up to this much beyond `max_bytes` through the shared process is cheaper than
# starting a one-shot process (~2 ms); beyond it the one-shot process wins and the shared pipe stays free.
LARGE_BLOB_SLACK = 256 * 1024
# Blobs up to this size are kept in memory once read (whole, whatever `max_bytes` was): source files, configs,
# docs. Every such blob is read whole anyway (it is within LARGE_BLOB_SLACK of any `max_bytes`).
MAX_CACHED_BLOB = 256 * 1024
DEFAULT_BLOB_CACHE_BYTES = 64 * 1024 * 1024
_PATH_CACHE_ENTRIES = 8192  # (commit, path) -> entry, ~250 bytes each


class ObjectReader:
    """Commits, trees and blobs of one repository. `catfile` is swapped by the owner after each sync;
    the caches survive because objects are immutable. `blobs` is the blob-content cache, usually shared by
    all mirrors (keys carry this reader's identity, so mirrors never see each other's entries)."""

    def __init__(self, catfile: CatFile, *, repo_name: str, timeout: float, blobs: ByteLRU | None = None) -> None:
        self.catfile = catfile
        self.repo_name = repo_name
        self.timeout = timeout
        self.blobs = blobs if blobs is not None else ByteLRU(DEFAULT_BLOB_CACHE_BYTES, MAX_CACHED_BLOB)
        self.reset()

    def reset(self) -> None:
        """Forget everything known about this mirror's objects (it was replaced by a different repository)."""
        self._trees: LRU[str, dict[str, RawTreeEntry]] = LRU(4096)
        self._commits: LRU[str, tuple[str, CommitSummary]] = LRU(4096)
        self._blob_sizes: LRU[str, int] = LRU(65536)  # saves the `info` round trip on repeated reads
        self._paths: LRU[tuple[str, str], RawTreeEntry] = LRU(_PATH_CACHE_ENTRIES)
        self._blob_owner = object()  # part of every key in `blobs`: a new identity orphans the old entries

    async def commit(self, sha: str) -> tuple[str, CommitSummary]:
        """(root tree oid, summary) of a commit."""
        commits = self._commits
        cached = commits.get(sha)
        if cached is not None:
            return cached
        found = await self.catfile.read(sha)
        if found is None or found[0].type != "commit":
            raise NotFound(f"commit {sha} not found in {self.repo_name}")
        return commits.put(sha, parse_commit(sha, found[1]))

    async def tree(self, oid: str) -> dict[str, RawTreeEntry]:
        trees = self._trees
        cached = trees.get(oid)
        if cached is not None:
            return cached
        found = await self.catfile.read(oid)
        if found is None or found[0].type != "tree":
            raise NotFound(f"tree {oid} not found in {self.repo_name}")
        return trees.put(oid, parse_tree(found[1]))

    async def lookup(self, commit_sha: str, path: str) -> RawTreeEntry:
        """The tree entry at `path` ("" is the root tree) in `commit_sha`, or NotFound."""
        paths = self._paths
        key = (commit_sha, path)
        cached = paths.get(key)
        if cached is not None:
            return cached
        tree_oid, _ = await self.commit(commit_sha)
        entry = RawTreeEntry("", ROOT_MODE, tree_oid)
        if not path:
            return paths.put(key, entry)
        walked: list[str] = []
        for name in path.split("/"):
            if entry.type != "tree":
                raise NotFound(
                    f"path '{path}' not found at {commit_sha[:12]} in {self.repo_name}: "
                    f"'{'/'.join(walked)}' is not a directory"
                )
            found = (await self.tree(entry.oid)).get(name)
            if found is None:
                raise NotFound(f"path '{path}' not found at {commit_sha[:12]} in {self.repo_name}")
            entry = found
            walked.append(name)
        return paths.put(key, entry)

    async def blob_bytes(self, oid: str, max_bytes: int) -> tuple[int, bytes]:
        """(full size, at most `max_bytes` of content) of a blob."""
        blobs, blob_key = self.blobs, (self._blob_owner, oid)
        whole = blobs.get(blob_key)
        if whole is not None:
            return len(whole), whole[:max_bytes]  # a slice covering all of it is the same object: no copy
        sizes = self._blob_sizes
        size = sizes.get(oid)
        if size is None:
            info = await self.catfile.info(oid)
            if info is None:
                raise NotFound(f"object {oid} not found in {self.repo_name}")
            size = sizes.put(oid, info.size)
        if size <= max_bytes + LARGE_BLOB_SLACK:
            found = await self.catfile.read(oid)
            if found is None:
                raise NotFound(f"object {oid} not found in {self.repo_name}")
            whole = found[1]
            blobs.put(blob_key, whole)  # kept only when small enough (MAX_CACHED_BLOB)
            return size, whole[:max_bytes]
        return size, await self._read_prefix(oid, max_bytes)

    async def blob_sizes(self, oids: list[str]) -> dict[str, int]:
        """Sizes of many blobs: cached ones free, the rest in one pipelined `info` batch."""
        known = self._blob_sizes
        sizes: dict[str, int] = {}
        missing: list[str] = []
        for oid in oids:
            size = known.get(oid)
            if size is None:
                missing.append(oid)
            else:
                sizes[oid] = size
        if missing:
            for oid, info in zip(missing, await self.catfile.infos(missing), strict=True):
                if info is not None:
                    sizes[oid] = known.put(oid, info.size)
        return sizes

    async def _read_prefix(self, oid: str, max_bytes: int) -> bytes:
        process = await spawn_git(self.catfile.git_dir, ["cat-file", "blob", oid])
        assert process.stdout is not None
        try:
            async with asyncio.timeout(self.timeout):
                return await process.stdout.readexactly(max_bytes)
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except TimeoutError:
            raise Unavailable(f"reading {oid} from {self.repo_name} timed out after {self.timeout:g} s") from None
        finally:
            await kill_process_tree(process)

    @property
    def git_dir(self) -> Path:
        return self.catfile.git_dir
