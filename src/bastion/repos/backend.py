"""The seam between tools and where repository data lives.

Callers always pass commit SHAs that came out of `resolve()`; a backend never sees a caller's raw ref or
an unvalidated path (see `bastion.repos.names`). Every method may raise `NotFound` or `Unavailable`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal, Protocol

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

__all__ = ["DiffDetail", "RepositoryBackend"]

DiffDetail = Literal["none", "stats", "full_patch"]


class RepositoryBackend(Protocol):
    """Read-only access to the registered repositories."""

    async def list_repositories(self) -> list[RepoInfo]:
        """Every registered repository, sorted by name."""
        ...

    async def get_repository(self, name: str) -> RepoInfo:
        """The repository registered under `name` (matched case-insensitively), or NotFound."""
        ...

    async def refs(self, repo: str) -> RefSnapshot:
        """All branches and tags, peeled to commits."""
        ...

    async def resolve(self, repo: str, ref: str | None) -> ResolvedRef:
        """Turn a validated ref (branch, tag, `refs/...`, or a hex SHA prefix) into a commit; None means the
        default branch."""
        ...

    async def is_ancestor(self, repo: str, sha: str, tip: str) -> bool:
        """True when commit `sha` is reachable from commit `tip` (or equals it)."""
        ...

    async def read_blob(self, repo: str, commit: str, path: str, max_bytes: int) -> Blob | list[TreeEntry]:
        """The file at `path` (at most `max_bytes` of it), or the listing when `path` is a directory."""
        ...

    async def list_tree(self, repo: str, commit: str, path: str, recursive: bool) -> list[TreeEntry]:
        """Entries under directory `path` ("" for the root), sorted by path."""
        ...

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
        """Commits reachable from `commit`, newest first."""
        ...

    async def commit(self, repo: str, sha: str, detail: DiffDetail) -> CommitDetail:
        """One commit, with per-file stats (`stats`) or stats and patches (`full_patch`) against its first parent."""
        ...

    async def compare(
        self, repo: str, base: str, head: str, *, detail: DiffDetail, path: str | None = None
    ) -> Comparison:
        """The three-dot comparison `base...head`."""
        ...

    async def search(
        self,
        repo: str,
        commit: str,
        query: SearchQuery,
        *,
        timeout: float,  # noqa: ASYNC109 - the backend stops its search process itself and returns partial hits
        allow_path: Callable[[str], bool],
    ) -> SearchResult:
        """Lines matching `query` in the tree of `commit`, only in files for which `allow_path(path)` is true
        (so results the caller may not see never count against `max_results`)."""
        ...

    async def analyze(self, repo: str, commit: str) -> RepoAnalysis:
        """Languages, sizes, contributors and activity at `commit` (cached by SHA)."""
        ...
