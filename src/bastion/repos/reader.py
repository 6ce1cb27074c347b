"""Files and directories at a commit, read through the repository's cat-file process.

A path is found by walking trees from the commit's root tree; parsed trees are cached by oid (they never change),
so a warm read of a small file costs two pipe round trips (`info` for the size, `contents` for the bytes). The
tree entry gives the mode, which is how symlinks (120000) and submodules (160000) are told apart from files.
A blob much larger than what was asked is read by a one-shot `git cat-file blob` that is stopped after
`max_bytes`, so the shared process never has to drain a huge object.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bastion.errors import NotFound, Unavailable
from bastion.repos.cache import LRU
from bastion.repos.catfile import CatFile
from bastion.repos.gitcmd import kill_process_tree, spawn_git
from bastion.repos.objects import RawTreeEntry, parse_commit, parse_tree
from bastion.repos.types import CommitSummary

__all__ = ["LARGE_BLOB_SLACK", "ROOT_MODE", "ObjectReader"]

ROOT_MODE = "040000"
# Reading (and discarding) up to this much beyond `max_bytes` through the shared process is cheaper than
# starting a one-shot process (~2 ms); beyond it the one-shot process wins and the shared pipe stays free.
LARGE_BLOB_SLACK = 256 * 1024


class ObjectReader:
    """Commits, trees and blobs of one repository. `catfile` is swapped by the owner after each sync;
    the caches survive because objects are immutable."""

    def __init__(self, catfile: CatFile, *, repo_name: str, timeout: float) -> None:
        self.catfile = catfile
        self.repo_name = repo_name
        self.timeout = timeout
        self._trees: LRU[str, dict[str, RawTreeEntry]] = LRU(4096)
        self._commits: LRU[str, tuple[str, CommitSummary]] = LRU(4096)
        self._blob_sizes: LRU[str, int] = LRU(65536)  # saves the `info` round trip on repeated reads

    async def commit(self, sha: str) -> tuple[str, CommitSummary]:
        """(root tree oid, summary) of a commit."""
        cached = self._commits.get(sha)
        if cached is not None:
            return cached
        found = await self.catfile.read(sha)
        if found is None or found[0].type != "commit":
            raise NotFound(f"commit {sha} not found in {self.repo_name}")
        return self._commits.put(sha, parse_commit(sha, found[1]))

    async def tree(self, oid: str) -> dict[str, RawTreeEntry]:
        cached = self._trees.get(oid)
        if cached is not None:
            return cached
        found = await self.catfile.read(oid)
        if found is None or found[0].type != "tree":
            raise NotFound(f"tree {oid} not found in {self.repo_name}")
        return self._trees.put(oid, parse_tree(found[1]))

    async def lookup(self, commit_sha: str, path: str) -> RawTreeEntry:
        """The tree entry at `path` ("" is the root tree) in `commit_sha`, or NotFound."""
        tree_oid, _ = await self.commit(commit_sha)
        entry = RawTreeEntry("", ROOT_MODE, tree_oid)
        if not path:
            return entry
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
        return entry

    async def blob_bytes(self, oid: str, max_bytes: int) -> tuple[int, bytes]:
        """(full size, at most `max_bytes` of content) of a blob."""
        size = self._blob_sizes.get(oid)
        if size is None:
            info = await self.catfile.info(oid)
            if info is None:
                raise NotFound(f"object {oid} not found in {self.repo_name}")
            size = self._blob_sizes.put(oid, info.size)
        if size <= max_bytes + LARGE_BLOB_SLACK:
            found = await self.catfile.read(oid, max_bytes)
            if found is None:
                raise NotFound(f"object {oid} not found in {self.repo_name}")
            return size, found[1]
        return size, await self._read_prefix(oid, max_bytes)

    async def blob_sizes(self, oids: list[str]) -> dict[str, int]:
        """Sizes of many blobs: cached ones free, the rest in one pipelined `info` batch."""
        sizes: dict[str, int] = {}
        missing: list[str] = []
        for oid in oids:
            size = self._blob_sizes.get(oid)
            if size is None:
                missing.append(oid)
            else:
                sizes[oid] = size
        if missing:
            for oid, info in zip(missing, await self.catfile.infos(missing), strict=True):
                if info is not None:
                    sizes[oid] = self._blob_sizes.put(oid, info.size)
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
