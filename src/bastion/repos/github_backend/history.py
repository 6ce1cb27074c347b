"""log, one commit with its files, and the three-dot comparison, from GitHub's commits and compare APIs.

- `log`: `GET /commits?sha=<commit>&path&since&until&per_page=100&page=N`; the caller's `skip`/`limit` window is cut
  from the (at most two) pages of 100 that cover it, each cached by (commit, filters, page): a history page at a
  fixed commit never changes. GitHub's `author` parameter matches a login or e-mail exactly, while the tool
  promises "author contains this text" (git's `--author`, case-insensitive), so an author filter is applied here,
  scanning at most `MAX_AUTHOR_SCAN_PAGES` pages (the newest 1,000 matching commits' worth of history).
- `commit`: `GET /commits/{sha}`: message, and files against the first parent with patches, 300 per page (GitHub
  pages the rest, up to 3,000 files); detail "none" reuses a summary already seen in a log page.
- `compare`: `GET /compare/{base}...{head}`: ahead/behind, merge base, files (GitHub lists at most 300), commits
  oldest first (returned newest first, at most 250, like `git log base..head`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bastion.errors import InvalidInput, NotFound
from bastion.repos.backend import DiffDetail
from bastion.repos.github_backend.client import GitHubNotFound
from bastion.repos.github_backend.parse import commit_summary, file_diff
from bastion.repos.types import CommitDetail, CommitSummary, Comparison

if TYPE_CHECKING:
    from bastion.repos.github_backend.backend import GitHubBackend

__all__ = [
    "MAX_AUTHOR_SCAN_PAGES",
    "MAX_COMMIT_FILE_PAGES",
    "MAX_COMPARE_COMMITS",
    "MAX_COMPARE_FILES",
    "LogWindow",
    "commit_detail",
    "compare",
    "log",
]

PAGE = 100
MAX_LOG_LIMIT = 1000
MAX_AUTHOR_LENGTH = 200
MAX_AUTHOR_SCAN_PAGES = 10
MAX_COMMIT_FILE_PAGES = 10  # GitHub: 300 files per page, at most 3,000 files for one commit
MAX_COMPARE_COMMITS = 250
MAX_COMPARE_FILES = 300  # GitHub's own cap on a comparison's file list


@dataclass(frozen=True, slots=True)
class LogWindow:
    path: str | None
    author: str | None
    since: datetime | None
    until: datetime | None
    skip: int
    limit: int


def _iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def log_page(
    gh: GitHubBackend, repo: str, commit: str, window: LogWindow, page: int
) -> tuple[list[CommitSummary], bool]:
    """Page `page` (100 commits) of the history of `commit` with the window's path/since/until; (commits, more)."""
    key = (repo.lower(), commit, window.path, window.since, window.until, page)
    cached = gh.log_pages.get(key)
    if cached is not None:
        return cached
    params: dict[str, str | int] = {"sha": commit, "per_page": PAGE, "page": page}
    if window.path:
        params["path"] = window.path
    if window.since is not None:
        params["since"] = _iso(window.since)
    if window.until is not None:
        params["until"] = _iso(window.until)
    try:
        response = await gh.client.json(repo.split("/", 1)[0], f"/repos/{repo}/commits", params=params)
    except GitHubNotFound:
        raise NotFound(f"commit {commit} not found in {repo}") from None
    commits = [commit_summary(item) for item in response.data or []]
    for summary in commits:
        gh.summaries.put((repo.lower(), summary.sha), summary)
    return gh.log_pages.put(key, (commits, "next" in response.links))


def _check_window(window: LogWindow) -> None:
    if window.skip < 0 or window.limit < 1:
        raise InvalidInput("skip must be >= 0 and limit >= 1")
    author = window.author
    if author and (len(author) > MAX_AUTHOR_LENGTH or any(ord(char) < 0x20 for char in author)):
        raise InvalidInput("author filter is too long or contains control characters")


async def log(gh: GitHubBackend, repo: str, commit: str, window: LogWindow) -> list[CommitSummary]:
    _check_window(window)
    limit = min(window.limit, MAX_LOG_LIMIT)
    if not window.author:
        first, last = window.skip // PAGE + 1, (window.skip + limit - 1) // PAGE + 1
        found: list[CommitSummary] = []
        for page in range(first, last + 1):
            commits, more = await log_page(gh, repo, commit, window, page)
            found.extend(commits)
            if not more:
                break
        offset = window.skip - (first - 1) * PAGE
        return found[offset : offset + limit]
    needle = window.author.lower()
    matched: list[CommitSummary] = []
    for page in range(1, MAX_AUTHOR_SCAN_PAGES + 1):
        commits, more = await log_page(gh, repo, commit, window, page)
        matched.extend(c for c in commits if needle in f"{c.author_name} <{c.author_email}>".lower())
        if len(matched) >= window.skip + limit or not more:
            break
    return matched[window.skip : window.skip + limit]


async def _commit_files(gh: GitHubBackend, repo: str, sha: str) -> tuple[CommitSummary, tuple[Any, ...], bool]:
    key = (repo.lower(), sha)
    cached = gh.details.get(key)
    if cached is not None:
        return cached
    owner = repo.split("/", 1)[0]
    try:
        response = await gh.client.json(owner, f"/repos/{repo}/commits/{sha}")
    except GitHubNotFound:
        raise NotFound(f"commit {sha} not found in {repo}") from None
    summary = commit_summary(response.data)
    files: list[Any] = list(response.data.get("files") or [])
    next_page = response.links.get("next")
    pages = 1
    while next_page is not None and pages < MAX_COMMIT_FILE_PAGES:
        more = await gh.client.json(owner, next_page)
        files.extend(more.data.get("files") or [])
        next_page, pages = more.links.get("next"), pages + 1
    gh.summaries.put(key, summary)
    return gh.details.put(key, (summary, tuple(files), next_page is not None))


async def commit_detail(gh: GitHubBackend, repo: str, sha: str, detail: DiffDetail) -> CommitDetail:
    if detail == "none":
        known = gh.summaries.get((repo.lower(), sha))
        if known is not None:
            return CommitDetail(commit=known)
    summary, files, more = await _commit_files(gh, repo, sha)
    if detail == "none":
        return CommitDetail(commit=summary)
    with_patch = detail == "full_patch"
    diffs = tuple(file_diff(item, with_patch=with_patch) for item in files)
    return CommitDetail(commit=summary, files=diffs, files_truncated=more)


def _under(path: str, prefix: str | None) -> bool:
    return prefix is None or path == prefix or path.startswith(prefix + "/")


async def _comparison(gh: GitHubBackend, repo: str, base: str, head: str) -> tuple[Any, list[CommitSummary]]:
    """(first page of the compare answer, up to 250 newest commits newest first), cached."""
    key = (repo.lower(), base, head)
    cached = gh.comparisons.get(key)
    if cached is not None:
        return cached
    path = f"/compare/{base}...{head}"
    try:
        first = await gh.get(repo, path, per_page=PAGE, page=1)
    except GitHubNotFound as exc:
        if "common ancestor" in exc.message:
            raise InvalidInput(
                f"{base[:12]} and {head[:12]} have no common ancestor in {repo}; GitHub cannot compare them"
            ) from None
        raise NotFound(f"{base[:12]} or {head[:12]} is not a commit of {repo}") from None
    total = int(first.get("total_commits") or 0)
    newest_start = max(0, total - MAX_COMPARE_COMMITS)
    pages = range(newest_start // PAGE + 1, (total - 1) // PAGE + 2) if total else range(0)
    fetched = await asyncio.gather(*(gh.get(repo, path, per_page=PAGE, page=p) for p in pages if p != 1))
    by_page = {1: first, **{p: data for p, data in zip((p for p in pages if p != 1), fetched, strict=True)}}
    ordered: list[Any] = []
    for page in pages:
        ordered.extend(by_page[page].get("commits") or [])
    skip = newest_start - (pages.start - 1) * PAGE if total else 0
    commits = [commit_summary(item) for item in ordered[skip:]]
    commits.reverse()
    return gh.comparisons.put(key, (first, commits))


async def compare(
    gh: GitHubBackend, repo: str, base: str, head: str, detail: DiffDetail, path: str | None
) -> Comparison:
    data, commits = await _comparison(gh, repo, base, head)
    files = data.get("files") or []
    with_patch = detail == "full_patch"
    diffs = (
        ()
        if detail == "none"
        else tuple(file_diff(item, with_patch=with_patch) for item in files if _under(str(item.get("filename")), path))
    )
    merge_base = data.get("merge_base_commit") or {}
    return Comparison(
        base_sha=base,
        head_sha=head,
        merge_base_sha=str(merge_base["sha"]) if merge_base.get("sha") else None,
        ahead_by=int(data.get("ahead_by") or 0),
        behind_by=int(data.get("behind_by") or 0),
        commits=tuple(commits),
        files=diffs,
        # GitHub lists at most 300 files of a comparison and does not say how many more there are.
        files_truncated=detail != "none" and len(files) >= MAX_COMPARE_FILES,
    )
