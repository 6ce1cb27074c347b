"""`analyze` over GitHub: the same facts as the mirror's, at the same commit, from few API calls.

- Files, sizes, languages, largest files: the commit's recursive tree (already cached for reads and listings), run
  through the mirror's own `summarize`, so both backends classify languages identically and per commit. GitHub's
  `/languages` endpoint is not used: it describes the default branch only, with another classifier.
- History: the commits API at the SHA, 100 per page. Up to `MAX_HISTORY_PAGES` pages are read (shared with
  list_commits' cache); a longer history is summarised from its newest 1,000 commits for activity, its last page
  (named by the `Link` header) for the exact commit count and first commit date, and GitHub's `/contributors`
  (default branch, by login or name) for the top contributors.

Cached per SHA like the mirror's; activity windows are relative to now, so an entry is recomputed after
`ACTIVITY_TTL_SECONDS`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from bastion.repos.analysis import ACTIVITY_TTL_SECONDS, TOP_CONTRIBUTORS, summarize
from bastion.repos.github_backend.history import PAGE, LogWindow, log_page
from bastion.repos.types import CommitSummary, Contributor, RepoAnalysis

if TYPE_CHECKING:
    from bastion.repos.github_backend.backend import GitHubBackend

__all__ = ["MAX_HISTORY_PAGES", "analyze"]

MAX_HISTORY_PAGES = 10
_ALL = LogWindow(None, None, None, None, 0, PAGE)


def _page_number(url: str | None) -> int | None:
    if url is None:
        return None
    values = parse_qs(urlsplit(url).query).get("page")
    return int(values[0]) if values and values[0].isdigit() else None


async def _last_page(gh: GitHubBackend, repo: str, commit: str) -> int | None:
    """The number of the last history page, from the first page's `Link: rel="last"` (None: one page)."""
    response = await gh.client.json(
        repo.split("/", 1)[0], f"/repos/{repo}/commits", params={"sha": commit, "per_page": PAGE, "page": 1}
    )
    return _page_number(response.links.get("last"))


async def _contributors(gh: GitHubBackend, repo: str) -> tuple[Contributor, ...]:
    data = await gh.get(repo, "/contributors", anon="true", per_page=TOP_CONTRIBUTORS)
    people = [
        Contributor(str(item.get("login") or item.get("name") or "?"), int(item.get("contributions") or 0))
        for item in data or []
        if isinstance(item, dict)
    ]
    return tuple(people[:TOP_CONTRIBUTORS])


async def analyze(gh: GitHubBackend, repo: str, commit: str) -> RepoAnalysis:
    key = (repo.lower(), commit)
    cached = gh.analyses.get(key)
    if cached is not None and time.monotonic() - cached[0] < ACTIVITY_TTL_SECONDS:
        return cached[1]
    index = await gh.tree_index(repo, commit)
    recent: list[CommitSummary] = []
    complete = False
    for page in range(1, MAX_HISTORY_PAGES + 1):
        commits, more = await log_page(gh, repo, commit, _ALL, page)
        recent.extend(commits)
        if not more:
            complete = True
            break
    pairs = [(int(c.authored_at.timestamp()), c.author_name) for c in recent]
    result = summarize(commit, index.entries, pairs, datetime.now(UTC))
    if not complete:
        last = await _last_page(gh, repo, commit) or MAX_HISTORY_PAGES
        oldest, _ = await log_page(gh, repo, commit, _ALL, last)
        first_at = min((c.authored_at for c in oldest), default=result.first_commit_at)
        result = replace(
            result,
            commit_count=(last - 1) * PAGE + len(oldest),
            first_commit_at=first_at.astimezone(UTC) if first_at else None,
            contributors=await _contributors(gh, repo),
        )
    gh.analyses.put(key, (time.monotonic(), result))
    return result
