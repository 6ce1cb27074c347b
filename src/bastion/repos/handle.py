"""Everything the server keeps per mirrored repository: the cat-file process, the ref table and the caches.

Caches hold facts about immutable objects (keyed by oid/SHA), so a sync never invalidates them; what a sync
changes is the ref table and the pack files, and both are picked up here: when the ref files' stat signature
changes, the table is reloaded and the cat-file process is replaced by a fresh one. A mirror that was deleted and
created again (possibly from a different repository under the same name) is told apart by its identity (inodes
of the directory and of its `config`, which only `git init` writes): then every cache is dropped too.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from bastion.config import Settings
from bastion.errors import Unavailable
from bastion.repos.cache import LRU, ByteLRU
from bastion.repos.catfile import CatFile
from bastion.repos.reader import ObjectReader
from bastion.repos.refs import RefTable, RefWatcher
from bastion.repos.types import RepoAnalysis, TreeEntry

__all__ = ["MirrorHandle"]

log = logging.getLogger(__name__)

_Identity = tuple[int, int, int, int]


class MirrorHandle:
    """Server-side state of one mirror. Created lazily by the backend, closed by `aclose()`. `blobs` is the
    blob-content cache (shared by the backend's handles; a handle made alone gets its own)."""

    def __init__(
        self, name: str, git_dir: Path, worktree_root: Path, settings: Settings, *, blobs: ByteLRU | None = None
    ) -> None:
        self.name = name
        self.git_dir = git_dir
        self.worktree_root = worktree_root
        self.settings = settings
        self.timeout = settings.repos.git_timeout_seconds
        self.catfile = CatFile(git_dir, timeout=self.timeout)
        self.reader = ObjectReader(self.catfile, repo_name=name, timeout=self.timeout, blobs=blobs)
        self.refs = RefWatcher(git_dir)
        self._identity: _Identity | None = None
        self._reset_caches()
        self._reload_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    def _reset_caches(self) -> None:
        self.commits_seen: LRU[str, bool] = LRU(65536)
        self.ancestry: LRU[tuple[str, str], bool] = LRU(65536)
        self.listings: LRU[tuple[str, bool], tuple[TreeEntry, ...]] = LRU(512)
        self.analyses: LRU[str, tuple[float, RepoAnalysis]] = LRU(64)
        self.reader.reset()

    async def ref_table(self) -> RefTable:
        """The current ref table, reloaded (and cat-file restarted) when a sync changed the mirror."""
        table = self.refs.current()
        if table is not None:
            return table
        async with self._reload_lock:
            signature = self.refs.changed()
            if self.refs.table is not None and signature is None:
                return self.refs.table
            if not self.git_dir.is_dir():
                raise Unavailable(f"the mirror of {self.name} is not ready: run `bastion repo sync {self.name}`")
            identity = self._read_identity()
            if self._identity is not None and identity != self._identity:
                log.info("the mirror of %s was re-created: dropping its caches", self.name)
                self._reset_caches()
            self._identity = identity
            if self.refs.table is not None:
                self._restart_catfile()
            return await self.refs.load(self.catfile, signature or self.refs.signature())

    def _read_identity(self) -> _Identity:
        """Changes when the mirror directory is replaced, not when a sync fetches into it (a false change only
        costs a cold cache; a missed one could serve the old repository's objects, hence two inodes and a time)."""
        try:
            directory = os.stat(self.git_dir)
        except FileNotFoundError:
            raise Unavailable(f"the mirror of {self.name} is not ready: run `bastion repo sync {self.name}`") from None
        try:
            config = os.stat(self.git_dir / "config")
        except FileNotFoundError:
            return (directory.st_dev, directory.st_ino, 0, 0)
        return (directory.st_dev, directory.st_ino, config.st_ino, config.st_mtime_ns)

    def _restart_catfile(self) -> None:
        """New packs came with the sync: start a fresh reader process; the old one finishes its requests first."""
        old = self.catfile
        self.catfile = CatFile(self.git_dir, timeout=self.timeout)
        old.successor = self.catfile
        self.reader.catfile = self.catfile
        task = asyncio.ensure_future(old.aclose())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        log.debug("restarted cat-file for %s after a sync", self.name)

    async def aclose(self) -> None:
        await self.catfile.aclose()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
