"""Code search through GitHub's code search API, with the lines found read from the commit itself.

GitHub's limits shape what this can do (docs: "Search code"): it searches the default branch only, indexes files
under 384 KB, takes no regular expressions, ignores most punctuation, answers whole files (no line numbers) and
allows 10 requests a minute. So: a search at any commit other than the default branch's tip, or with a regex, is
`Unavailable` with the reason; otherwise one search request (a second page only when the first is all allowed
hits) names candidate files, and each allowed candidate's content at the searched commit (cached by blob SHA) is
scanned here for the exact pattern, so the hits, line numbers and case sensitivity are exact for that commit.
Files the index has not caught up with yet are missed; `truncated` is set when GitHub said its results were
incomplete or more files matched than were read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.errors import NotFound, Unavailable
from bastion.repos.github_backend.client import TEXT_MATCH_MEDIA, GitHubUnprocessable
from bastion.repos.github_backend.trees import walk
from bastion.repos.globs import glob_matcher
from bastion.repos.search import check_pattern, clip_line
from bastion.repos.types import SearchHit, SearchQuery, SearchResult

if TYPE_CHECKING:
    from bastion.repos.github_backend.backend import GitHubBackend

__all__ = ["MAX_INDEXED_FILE_BYTES", "MAX_QUERY_CHARS", "search"]

MAX_INDEXED_FILE_BYTES = 384 * 1024
MAX_QUERY_CHARS = 256  # GitHub refuses longer `q` values
MAX_PAGES = 2


def _check(query: SearchQuery, repo: str) -> None:
    check_pattern(query)
    if query.regex:
        raise Unavailable(
            f"{repo} is served through GitHub's code search API, which takes no regular expressions; search for "
            "a fixed string (regex=false)"
        )


def _matching_lines(data: bytes, query: SearchQuery) -> list[tuple[int, str]]:
    if b"\0" in data[:8000]:
        return []  # binary, as `git grep -I` skips it
    text = data.decode("utf-8", "replace")
    needle = query.pattern if query.case_sensitive else query.pattern.lower()
    found: list[tuple[int, str]] = []
    # Lines end at "\n" only, as for git grep, ripgrep and the content guard's LineView (str.splitlines also splits
    # at form feeds, "\x1c", "\u2028", ...: the guard would then look for a hit on the wrong line).
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        position = (line if query.case_sensitive else line.lower()).find(needle)
        if position >= 0:
            found.append((number, clip_line(line, position)))
    return found


async def _candidates(gh: GitHubBackend, repo: str, query: SearchQuery, page: int) -> tuple[list[Any], bool, int]:
    """(items, incomplete, total_count) of one page of GitHub's answer."""
    phrase = query.pattern.replace("\\", "\\\\").replace('"', '\\"')
    q = f'"{phrase}" repo:{repo}'
    if len(q) > MAX_QUERY_CHARS:
        raise Unavailable(
            f"the search pattern is too long for GitHub's code search (a query is at most {MAX_QUERY_CHARS} characters)"
        )
    params: dict[str, str | int] = {"q": q, "per_page": 100, "page": page}
    try:
        response = await gh.client.json(
            repo.split("/", 1)[0], "/search/code", params=params, resource="code_search", accept=TEXT_MATCH_MEDIA
        )
    except GitHubUnprocessable as exc:
        raise Unavailable(f"GitHub's code search cannot run this query: {exc.message}") from None
    data = response.data if isinstance(response.data, dict) else {}
    return list(data.get("items") or []), bool(data.get("incomplete_results")), int(data.get("total_count") or 0)


async def _run(
    gh: GitHubBackend,
    repo: str,
    commit: str,
    query: SearchQuery,
    allow_path: Callable[[str], bool],
    limit: int,
    hits: list[SearchHit],
) -> bool:
    """Fill `hits` (path order); True when more existed than were returned."""
    glob = glob_matcher(query.path_glob) if query.path_glob else None
    index = await gh.tree_index(repo, commit)
    seen = 0
    for page in range(1, MAX_PAGES + 1):
        items, incomplete, total = await _candidates(gh, repo, query, page)
        seen += len(items)
        paths = sorted({str(item.get("path")) for item in items if isinstance(item, dict)})
        for path in paths:
            if (glob is not None and not glob(path)) or not allow_path(path):
                continue
            try:
                entry = await walk(index, path, lambda oid, rec: gh.subtree(repo, oid, rec), repo)
            except NotFound:
                continue  # indexed on a newer or older default branch than the one searched
            if entry.type != "blob" or entry.mode == "120000":
                continue
            data = await gh.blob_bytes(repo, entry.oid, entry.size, MAX_INDEXED_FILE_BYTES)
            for number, line in _matching_lines(data, query):
                if len(hits) >= limit:
                    return True
                hits.append(SearchHit(path, number, line))
        if incomplete:
            return True
        if seen >= total or not items or len(hits) >= limit:
            return seen < total
    return True


async def search(
    gh: GitHubBackend,
    repo: str,
    commit: str,
    query: SearchQuery,
    time_limit: float,
    allow_path: Callable[[str], bool],
    max_results_cap: int,
) -> SearchResult:
    _check(query, repo)
    snapshot = await gh.refs(repo)
    default = snapshot.default_branch
    tip = snapshot.branches.get(default) if default else None
    if tip != commit:
        where = f"its default branch '{default}' ({tip[:12]})" if default and tip else "its default branch"
        raise Unavailable(
            f"{repo} is served through GitHub's code search API, which searches only {where}; "
            f"{commit[:12]} cannot be searched here (omit ref to search the default branch)"
        )
    limit = max(1, min(query.max_results, max_results_cap))
    hits: list[SearchHit] = []
    try:
        async with asyncio.timeout(time_limit):
            truncated = await _run(gh, repo, commit, query, allow_path, limit, hits)
    except TimeoutError:
        truncated = True  # the time budget ran out: what was found so far is returned
    return SearchResult(tuple(hits), truncated, "github")
