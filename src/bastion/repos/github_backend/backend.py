"""`GitHubBackend`: the RepositoryBackend over GitHub's REST API, for deployments without disk (Lambda).

Same value types and semantics as `MirrorBackend`, read through from GitHub and cached: everything addressed by
a commit or blob SHA (trees, file contents, commits, comparisons, history pages, analyses) in bounded LRUs that
never go stale; branch/tag lists and repository metadata for `github.refs_cache_seconds`, then revalidated with
ETags (a 304 costs no rate limit). API calls per method are listed in docs/serverless.md.

The registry is `repos.bootstrap` (the configured repositories); when it is empty, any repository of an
organisation in `github.org_allowlist` that the credentials can see. Construct one per process and
`await backend.aclose()` on shutdown (it closes the HTTP client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from bastion.config import Settings
from bastion.errors import BastionError, ConfigError, InvalidInput, NotFound
from bastion.github.credentials import GitHubCredentials
from bastion.repos.backend import DiffDetail
from bastion.repos.cache import LRU
from bastion.repos.github_backend import analysis as github_analysis
from bastion.repos.github_backend import history
from bastion.repos.github_backend import search as github_search
from bastion.repos.github_backend.client import SHA_MEDIA, GitHubClient, GitHubNotFound, GitHubUnprocessable
from bastion.repos.github_backend.memo import SizedLRU, TtlCache
from bastion.repos.github_backend.trees import TreeIndex, children_of, listing, walk
from bastion.repos.names import is_full_sha, looks_like_sha, validate_path, validate_repo_name
from bastion.repos.registry import name_from_url
from bastion.repos.search import GUARD_FETCH_FACTOR
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

__all__ = ["GitHubBackend"]

MAX_TAG_PAGES = 50  # 5,000 tags; beyond that the list is cut (and logged) rather than costing more calls


def require_sha(value: str, what: str = "commit") -> str:
    """Backends only take SHAs from `resolve()`; anything else is a caller bug, refused loudly."""
    if not is_full_sha(value):
        raise InvalidInput(f"{what} must be a full 40-hex SHA from resolve(), got {value[:50]!r}")
    return value


@dataclass(frozen=True, slots=True)
class Configured:
    """A repository named in `repos.bootstrap`."""

    name: str
    url: str | None


class GitHubBackend:
    """Read-only access to repositories through GitHub's REST API."""

    def __init__(
        self, settings: Settings, credentials: GitHubCredentials, *, client: GitHubClient | None = None
    ) -> None:
        self.settings = settings
        self.client = client or GitHubClient(settings.github, credentials)
        self.configured: dict[str, Configured] = {}
        for entry in settings.repos.bootstrap:
            name = validate_repo_name(entry.name) if entry.name else name_from_url(entry.url)
            self.configured[name.lower()] = Configured(name, entry.url)
        self.org_allowlist = {org.lower() for org in settings.github.org_allowlist}
        if not self.configured and not self.org_allowlist:
            raise ConfigError(
                "the github repository backend would serve nothing: list the repositories in BASTION_REPOS__BOOTSTRAP "
                "(or the organisations in BASTION_GITHUB__ORG_ALLOWLIST)"
            )
        refs_seconds = settings.github.refs_cache_seconds
        self.repo_info: TtlCache[str, RepoInfo] = TtlCache(refs_seconds)
        self.ref_snapshots: TtlCache[str, RefSnapshot] = TtlCache(refs_seconds)
        self.trees: LRU[tuple[str, str], TreeIndex] = LRU(16)  # by commit; a huge repository's index is MBs
        self.subtrees: LRU[tuple[str, str, bool], tuple[tuple[TreeEntry, ...], bool]] = LRU(512)
        self.blobs: SizedLRU[tuple[str, str], bytes] = SizedLRU(settings.github.cache_bytes, len)
        self.commits_seen: LRU[tuple[str, str], str] = LRU(4096)  # (repo, prefix) -> full SHA
        self.ancestry: LRU[tuple[str, str, str], bool] = LRU(4096)
        self.summaries: LRU[tuple[str, str], CommitSummary] = LRU(4096)
        self.details: LRU[tuple[str, str], tuple[CommitSummary, tuple[Any, ...], bool]] = LRU(256)
        self.comparisons: LRU[tuple[str, str, str], Any] = LRU(128)
        self.log_pages: LRU[tuple[Any, ...], tuple[list[CommitSummary], bool]] = LRU(1024)
        self.analyses: LRU[tuple[str, str], tuple[float, RepoAnalysis]] = LRU(64)

    async def __aenter__(self) -> GitHubBackend:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- calls -------------------------------------------------------------------------------------------

    async def get(self, repo: str, path: str, **params: str | int) -> Any:
        """GET `/repos/{repo}{path}` as JSON (immutable resources: no revalidation)."""
        return (await self.client.json(_owner(repo), f"/repos/{repo}{path}", params=params)).data

    # -- repositories and refs ---------------------------------------------------------------------------

    def _configured(self, name: str) -> Configured:
        known = self.configured.get(name.lower())
        if known is not None:
            return known
        if self.configured:
            raise NotFound(f"repository {name!r} is not configured (BASTION_REPOS__BOOTSTRAP lists the served ones)")
        if _owner(name).lower() not in self.org_allowlist:
            raise NotFound(
                f"repository {name!r} is not served: its owner is not in BASTION_GITHUB__ORG_ALLOWLIST "
                "and BASTION_REPOS__BOOTSTRAP is empty"
            )
        return Configured(validate_repo_name(name), None)

    async def list_repositories(self) -> list[RepoInfo]:
        async def one(known: Configured) -> RepoInfo:
            try:
                return await self.get_repository(known.name)
            except BastionError as exc:  # listed anyway, with the reason, as a mirror that failed to sync is
                return RepoInfo(known.name, known.url or "", None, None, last_sync_error=exc.message)

        infos = await asyncio.gather(*(one(known) for known in self.configured.values()))
        return sorted(infos, key=lambda info: info.name.lower())

    async def get_repository(self, name: str) -> RepoInfo:
        known = self._configured(name)
        key = known.name.lower()
        cached = self.repo_info.get(key)
        if cached is not None:
            return cached
        try:
            response = await self.client.json(_owner(known.name), f"/repos/{known.name}", conditional=True)
        except GitHubNotFound:
            raise NotFound(
                f"repository {known.name!r} does not exist on GitHub or the credentials cannot see it"
            ) from None
        data = response.data if isinstance(response.data, dict) else {}
        # The configured spelling is the canonical name (policy rules name it); without one, GitHub's own.
        canonical = known.name if key in self.configured else str(data.get("full_name") or known.name)
        url = known.url or str(data.get("clone_url") or data.get("html_url") or "")
        info = RepoInfo(canonical, url, data.get("default_branch"), None)
        return self.repo_info.put(key, info)

    async def refs(self, repo: str) -> RefSnapshot:
        info = await self.get_repository(repo)
        key = info.name.lower()
        cached = self.ref_snapshots.get(key)
        if cached is not None:
            return cached
        owner = _owner(info.name)
        try:
            heads = (
                await self.client.json(owner, f"/repos/{info.name}/git/matching-refs/heads", conditional=True)
            ).data
        except GitHubNotFound:
            heads = []  # 409: an empty repository has no refs yet
        branches = {
            str(ref["ref"]).removeprefix("refs/heads/"): str(ref["object"]["sha"])
            for ref in heads or []
            if isinstance(ref, dict) and str(ref.get("ref", "")).startswith("refs/heads/")
        }
        tags: dict[str, str] = {}
        page: str | None = f"/repos/{info.name}/tags"
        params: dict[str, str | int] = {"per_page": 100}
        for _ in range(MAX_TAG_PAGES):
            if page is None:
                break
            try:
                response = await self.client.json(owner, page, params=params, conditional=True)
            except GitHubNotFound:
                break
            tags.update({str(tag["name"]): str(tag["commit"]["sha"]) for tag in response.data or []})
            page, params = response.links.get("next"), {}
        snapshot = RefSnapshot(branches=branches, tags=tags, default_branch=info.default_branch)
        return self.ref_snapshots.put(key, snapshot)

    async def resolve(self, repo: str, ref: str | None) -> ResolvedRef:
        info = await self.get_repository(repo)
        snapshot = await self.refs(info.name)
        named = _resolve_name(info.name, snapshot, ref)
        if named is not None:
            return named
        assert ref is not None
        if not looks_like_sha(ref):
            raise NotFound(f"ref '{ref}' not found in {info.name}")
        prefix = ref.lower()
        key = (info.name.lower(), prefix)
        known = self.commits_seen.get(key)
        if known is None:
            try:
                answer = await self.client.raw(
                    _owner(info.name), f"/repos/{info.name}/commits/{prefix}", max_bytes=100, accept=SHA_MEDIA
                )
            except (GitHubNotFound, GitHubUnprocessable):  # GitHub: 422 "No commit found for SHA"
                raise NotFound(f"ref '{ref}' not found in {info.name} (no commit has that SHA)") from None
            known = answer.decode("ascii", "replace").strip()
            if not is_full_sha(known) or not known.startswith(prefix):
                raise NotFound(f"ref '{ref}' not found in {info.name} (no commit has that SHA)")
            self.commits_seen.put(key, known)
        return ResolvedRef("commit", None, known)

    async def is_ancestor(self, repo: str, sha: str, tip: str) -> bool:
        require_sha(sha)
        require_sha(tip, "tip")
        if sha == tip:
            return True
        key = (repo.lower(), sha, tip)
        cached = self.ancestry.get(key)
        if cached is not None:
            return cached
        name = (await self.get_repository(repo)).name
        try:
            data = await self.get(name, f"/compare/{sha}...{tip}", per_page=1)
        except GitHubNotFound:
            return self.ancestry.put(key, False)  # no common history
        # `ahead`: tip has commits sha lacks and none the other way round, so sha is an ancestor of tip.
        return self.ancestry.put(key, data.get("status") in ("ahead", "identical"))

    # -- content -----------------------------------------------------------------------------------------

    async def tree_index(self, repo: str, commit: str) -> TreeIndex:
        """Every path of `commit` (one recursive trees call, cached by commit SHA)."""
        name = (await self.get_repository(repo)).name
        key = (name.lower(), require_sha(commit))
        cached = self.trees.get(key)
        if cached is not None:
            return cached
        try:
            data = await self.get(name, f"/git/trees/{commit}", recursive=1)
        except GitHubNotFound:
            raise NotFound(f"commit {commit} not found in {name}") from None
        entries, truncated = children_of(data)
        return self.trees.put(key, TreeIndex.build(commit, str(data.get("sha", "")), entries, truncated))

    async def subtree(self, repo: str, tree_oid: str, recursive: bool) -> tuple[tuple[TreeEntry, ...], bool]:
        """One tree by its SHA (entries relative to it), for indexes GitHub truncated."""
        key = (repo.lower(), tree_oid, recursive)
        cached = self.subtrees.get(key)
        if cached is not None:
            return cached
        params: dict[str, str | int] = {"recursive": 1} if recursive else {}
        try:
            data = await self.get(repo, f"/git/trees/{tree_oid}", **params)
        except GitHubNotFound:
            raise NotFound(f"tree {tree_oid} not found in {repo}") from None
        return self.subtrees.put(key, children_of(data))

    def _fetcher(self, repo: str) -> Callable[[str, bool], Any]:
        return lambda oid, recursive: self.subtree(repo, oid, recursive)

    async def blob_bytes(self, repo: str, oid: str, size: int | None, max_bytes: int) -> bytes:
        """At most `max_bytes` of blob `oid`; whole small blobs are cached by SHA."""
        if max_bytes <= 0:
            return b""
        key = (repo.lower(), oid)
        cached = self.blobs.get(key)
        if cached is not None:
            return cached[:max_bytes]
        want = max_bytes if size is None else min(max_bytes, size)
        data = await self.client.raw(_owner(repo), f"/repos/{repo}/git/blobs/{oid}", max_bytes=want)
        if size is not None and len(data) >= size:
            self.blobs.put(key, data)
        return data[:max_bytes]

    async def read_blob(self, repo: str, commit: str, path: str, max_bytes: int) -> Blob | list[TreeEntry]:
        if max_bytes < 0:
            raise InvalidInput("max_bytes must be >= 0")
        clean = validate_path(path)
        index = await self.tree_index(repo, commit)
        name = (await self.get_repository(repo)).name
        entry = await walk(index, clean, self._fetcher(name), name)
        if entry.type == "tree":
            return await listing(index, clean, False, self._fetcher(name), name)
        if entry.type == "commit":
            return Blob(path=clean, oid=entry.oid, size=0, data=b"", mode=entry.mode)
        # Size first (from the tree): only the bytes asked for are fetched, however large the file is.
        data = await self.blob_bytes(name, entry.oid, entry.size, max_bytes)
        size = entry.size if entry.size is not None else len(data)
        return Blob(path=clean, oid=entry.oid, size=size, data=data, mode=entry.mode)

    async def list_tree(self, repo: str, commit: str, path: str, recursive: bool) -> list[TreeEntry]:
        index = await self.tree_index(repo, commit)
        name = (await self.get_repository(repo)).name
        return await listing(index, validate_path(path), recursive, self._fetcher(name), name)

    # -- history, search, analysis -----------------------------------------------------------------------

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
        name = (await self.get_repository(repo)).name
        clean = validate_path(path) if path else None
        window = history.LogWindow(clean, author, since, until, skip, limit)
        return await history.log(self, name, require_sha(commit), window)

    async def commit(self, repo: str, sha: str, detail: DiffDetail) -> CommitDetail:
        name = (await self.get_repository(repo)).name
        return await history.commit_detail(self, name, require_sha(sha), detail)

    async def compare(
        self, repo: str, base: str, head: str, *, detail: DiffDetail, path: str | None = None
    ) -> Comparison:
        name = (await self.get_repository(repo)).name
        clean = validate_path(path) if path else None
        return await history.compare(self, name, require_sha(base, "base"), require_sha(head, "head"), detail, clean)

    async def search(
        self,
        repo: str,
        commit: str,
        query: SearchQuery,
        *,
        timeout: float,  # noqa: ASYNC109 - the RepositoryBackend signature
        allow_path: Callable[[str], bool],
    ) -> SearchResult:
        name = (await self.get_repository(repo)).name
        cap = self.settings.repos.max_search_results * GUARD_FETCH_FACTOR
        return await github_search.search(self, name, require_sha(commit), query, timeout, allow_path, cap)

    async def analyze(self, repo: str, commit: str) -> RepoAnalysis:
        name = (await self.get_repository(repo)).name
        return await github_analysis.analyze(self, name, require_sha(commit))


def _owner(repo: str) -> str:
    return repo.split("/", 1)[0]


def _resolve_name(repo: str, snapshot: RefSnapshot, ref: str | None) -> ResolvedRef | None:
    """The mirror's order: None/HEAD (default branch), `refs/heads/x` / `refs/tags/x` exactly, a short name as
    branch then tag; None when `ref` may be a SHA."""
    if ref is None or ref == "HEAD":
        branch = snapshot.default_branch
        if branch is None or branch not in snapshot.branches:
            raise NotFound(f"{repo} has no default branch yet (empty repository)")
        return ResolvedRef("branch", f"refs/heads/{branch}", snapshot.branches[branch])
    if ref.startswith("refs/"):
        sha = snapshot.tip(ref)
        if sha is None:
            raise NotFound(f"ref '{ref}' not found in {repo}")
        return ResolvedRef("branch" if ref.startswith("refs/heads/") else "tag", ref, sha)
    if ref in snapshot.branches:
        return ResolvedRef("branch", f"refs/heads/{ref}", snapshot.branches[ref])
    if ref in snapshot.tags:
        return ResolvedRef("tag", f"refs/tags/{ref}", snapshot.tags[ref])
    return None
