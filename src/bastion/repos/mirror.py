"""`MirrorBackend`: the RepositoryBackend over local bare mirrors.

Construct one per server process (`MirrorBackend(settings)`) and `await backend.aclose()` on shutdown (it stops
the cat-file processes). Per-repository state is created on first use; the registry file is re-read when it
changes, so repositories added by `bastion repo add` while serving appear without a restart. Blob contents are
cached in one byte budget for all repositories (`repos.blob_cache_bytes`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from bastion.config import Settings
from bastion.errors import InvalidInput
from bastion.repos import analysis, history, trees
from bastion.repos import search as code_search
from bastion.repos.backend import DiffDetail
from bastion.repos.cache import ByteLRU
from bastion.repos.handle import MirrorHandle
from bastion.repos.names import is_full_sha, validate_path
from bastion.repos.reader import MAX_CACHED_BLOB
from bastion.repos.refs import resolve_ref
from bastion.repos.registry import Registry, mirror_path, worktree_root
from bastion.repos.types import (
    Blob,
    CommitDetail,
    CommitSummary,
    Comparison,
    RefSnapshot,
    RepoAnalysis,
    RepoInfo,
    ResolvedRef,
    SearchQuery,
    SearchResult,
    TreeEntry,
)

__all__ = ["MirrorBackend"]


# Paths are validated again here (microseconds): a caller that forgot cannot turn a path into an option.


def _require_sha(value: str, what: str = "commit") -> str:
    """Backends only take SHAs from `resolve()`; anything else is a caller bug, refused loudly."""
    if not is_full_sha(value):
        raise InvalidInput(f"{what} must be a full 40-hex SHA from resolve(), got {value[:50]!r}")
    return value


class MirrorBackend:
    """Read-only access to the registered repositories' local mirrors."""

    def __init__(self, settings: Settings, *, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or Registry(settings.data_dir)
        self._handles: dict[str, MirrorHandle] = {}
        self.blobs = ByteLRU(settings.repos.blob_cache_bytes, MAX_CACHED_BLOB)

    async def __aenter__(self) -> MirrorBackend:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        handles, self._handles = list(self._handles.values()), {}
        for handle in handles:
            await handle.aclose()

    def handle(self, repo: str) -> MirrorHandle:
        """The state of a registered repository (NotFound when it is not registered)."""
        record = self.registry.get(repo)
        key = record.name.lower()
        handle = self._handles.get(key)
        if handle is None:
            data_dir = self.settings.data_dir
            handle = MirrorHandle(
                record.name,
                mirror_path(data_dir, record.name),
                worktree_root(data_dir, record.name),
                self.settings,
                blobs=self.blobs,
            )
            self._handles[key] = handle
        return handle

    async def _ready(self, repo: str) -> MirrorHandle:
        handle = self.handle(repo)
        if handle.refs.current() is None:
            await handle.ref_table()  # picks up a sync (new refs, fresh cat-file) before any read
        return handle

    # -- repositories and refs ---------------------------------------------------------------------------

    async def list_repositories(self) -> list[RepoInfo]:
        return [record.to_info() for record in self.registry.records()]

    async def get_repository(self, name: str) -> RepoInfo:
        return self.registry.get(name).to_info()

    async def refs(self, repo: str) -> RefSnapshot:
        return (await self.handle(repo).ref_table()).snapshot()

    async def resolve(self, repo: str, ref: str | None) -> ResolvedRef:
        handle = self.handle(repo)
        table = handle.refs.current() or await handle.ref_table()
        known = table.resolved.get(ref)  # names resolved before in this table: no coroutine, no cat-file
        if known is not None:
            return known
        return await resolve_ref(handle.name, table, ref, handle.catfile, handle.commits_seen)

    async def is_ancestor(self, repo: str, sha: str, tip: str) -> bool:
        handle = await self._ready(repo)
        return await history.is_ancestor(handle, _require_sha(sha), _require_sha(tip, "tip"))

    # -- content -----------------------------------------------------------------------------------------

    async def read_blob(self, repo: str, commit: str, path: str, max_bytes: int) -> Blob | list[TreeEntry]:
        handle = await self._ready(repo)
        return await trees.read_path(handle, _require_sha(commit), validate_path(path), max_bytes)

    async def list_tree(self, repo: str, commit: str, path: str, recursive: bool) -> list[TreeEntry]:
        handle = await self._ready(repo)
        return await trees.list_tree(handle, _require_sha(commit), validate_path(path), recursive)

    # -- history -----------------------------------------------------------------------------------------

    async def log(
        self,
        repo: str,
        commit: str,
        *,
        path: str | None = None,
        author: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        skip: int = 0,
        limit: int = 30,
    ) -> list[CommitSummary]:
        handle = await self._ready(repo)
        return await history.log(
            handle,
            _require_sha(commit),
            path=validate_path(path) if path else None,
            author=author,
            since=since,
            until=until,
            skip=skip,
            limit=limit,
        )

    async def commit(self, repo: str, sha: str, detail: DiffDetail) -> CommitDetail:
        handle = await self._ready(repo)
        return await history.commit_detail(handle, _require_sha(sha), detail)

    async def compare(
        self, repo: str, base: str, head: str, *, detail: DiffDetail, path: str | None = None
    ) -> Comparison:
        handle = await self._ready(repo)
        return await history.compare(
            handle,
            _require_sha(base, "base"),
            _require_sha(head, "head"),
            detail=detail,
            path=validate_path(path) if path else None,
        )

    # -- search and analysis -----------------------------------------------------------------------------

    async def search(
        self,
        repo: str,
        commit: str,
        query: SearchQuery,
        *,
        timeout: float,  # noqa: ASYNC109 - the RepositoryBackend signature
        allow_path: Callable[[str], bool],
    ) -> SearchResult:
        handle = await self._ready(repo)
        return await code_search.search(
            handle,
            _require_sha(commit),
            query,
            time_limit=timeout,
            allow_path=allow_path,
            max_results_cap=self.settings.repos.max_search_results * code_search.GUARD_FETCH_FACTOR,
        )

    async def analyze(self, repo: str, commit: str) -> RepoAnalysis:
        handle = await self._ready(repo)
        return await analysis.analyze(handle, _require_sha(commit))
