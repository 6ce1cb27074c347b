"""Everything the server keeps per mirrored repository: the cat-file process, the ref table and the caches.

Caches hold facts about immutable objects (keyed by oid/SHA), so a sync never invalidates them; what a sync
changes is the ref table and the pack files, and both are picked up here: when the ref files' stat signature
changes, the table is reloaded and the cat-file process is replaced by a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bastion.config import Settings
from bastion.errors import Unavailable
from bastion.repos.cache import LRU
from bastion.repos.catfile import CatFile
from bastion.repos.reader import ObjectReader
from bastion.repos.refs import RefTable, RefWatcher
from bastion.repos.types import RepoAnalysis, TreeEntry

__all__ = ["MirrorHandle"]

log = logging.getLogger(__name__)


class MirrorHandle:
    """Server-side state of one mirror. Created lazily by the backend, closed by `aclose()`."""

    def __init__(self, name: str, git_dir: Path, worktree_root: Path, settings: Settings) -> None:
        self.name = name
        self.git_dir = git_dir
        self.worktree_root = worktree_root
        self.settings = settings
        self.timeout = settings.repos.git_timeout_seconds
        self.catfile = CatFile(git_dir, timeout=self.timeout)
        self.reader = ObjectReader(self.catfile, repo_name=name, timeout=self.timeout)
        self.refs = RefWatcher(git_dir)
        self.commits_seen: LRU[str, bool] = LRU(65536)
        self.ancestry: LRU[tuple[str, str], bool] = LRU(65536)
        self.listings: LRU[tuple[str, bool], tuple[TreeEntry, ...]] = LRU(512)
        self.analyses: LRU[str, tuple[float, RepoAnalysis]] = LRU(64)
        self._reload_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    async def ref_table(self) -> RefTable:
        """The current ref table, reloaded (and cat-file restarted) when a sync changed the mirror."""
        table = self.refs.table
        if table is not None and self.refs.changed() is None:
            return table
        async with self._reload_lock:
            signature = self.refs.changed()
            if self.refs.table is not None and signature is None:
                return self.refs.table
            if not self.git_dir.is_dir():
                raise Unavailable(f"the mirror of {self.name} is not ready: run `bastion repo sync {self.name}`")
            if self.refs.table is not None:
                self._restart_catfile()
            return await self.refs.load(self.catfile, signature or self.refs.signature())

    def _restart_catfile(self) -> None:
        """New packs came with the sync: start a fresh reader process; the old one finishes its request first."""
        old = self.catfile
        self.catfile = CatFile(self.git_dir, timeout=self.timeout)
        self.reader.catfile = self.catfile
        task = asyncio.ensure_future(old.aclose())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        log.debug("restarted cat-file for %s after a sync", self.name)

    async def aclose(self) -> None:
        await self.catfile.aclose()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
