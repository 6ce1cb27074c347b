"""search_code: across every repository (or one) the caller may search, only in paths they may read."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import monotonic

from mcp_types import CallToolResult

from bastion.errors import AccessDenied, BastionError, InvalidInput
from bastion.policy.types import Operation
from bastion.repos.names import validate_repo_name
from bastion.repos.search import GUARD_FETCH_FACTOR
from bastion.repos.types import SearchQuery, SearchResult
from bastion.tools.access import AuthorizedRef
from bastion.tools.call import ToolCall
from bastion.tools.guarding import guard_enabled
from bastion.tools.models import SearchedRepo, SearchHitOut, SearchOut, SkippedRepo
from bastion.tools.results import result
from bastion.tools.search_guard import GuardedHits, guard_search_hits

__all__ = ["MAX_QUERY_LENGTH", "search_code"]

MAX_QUERY_LENGTH = 1000
_PARALLEL_REPOS = 4


def _query(query: str, regex: bool, case_sensitive: bool, path_glob: str | None, max_results: int) -> SearchQuery:
    if not query or not query.strip():
        raise InvalidInput("query must not be empty")
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"query is {len(query)} characters; the limit is {MAX_QUERY_LENGTH}")
    if any(ch in query for ch in "\x00\n\r"):
        raise InvalidInput("query must be a single line without NUL characters")
    if path_glob is not None and (
        len(path_glob) > 200 or any(ch in path_glob for ch in "\x00\n\r") or path_glob.startswith(("!", "-"))
    ):
        raise InvalidInput("path_glob must be one glob like 'src/**/*.py' (no '!' negation, no options)")
    return SearchQuery(
        pattern=query, regex=regex, case_sensitive=case_sensitive, path_glob=path_glob or None, max_results=max_results
    )


async def _targets(
    call: ToolCall, owner: str | None, repo: str | None, ref: str | None
) -> tuple[list[tuple[str, AuthorizedRef]], list[SkippedRepo]]:
    access = call.services.access
    if repo:
        if owner:
            name = await call.repository(owner, repo, Operation.SEARCH)
        elif "/" in repo:
            first, _, rest = validate_repo_name(repo).partition("/")
            name = await call.repository(first, rest, Operation.SEARCH)
        else:
            raise InvalidInput("give owner together with repo (or repo as 'owner/name')")
        return [(name, await call.authorize_ref(name, ref, Operation.SEARCH))], []
    if ref:
        raise InvalidInput("ref needs repo: a ref names a branch of one repository")
    targets: list[tuple[str, AuthorizedRef]] = []
    skipped: list[SkippedRepo] = []
    for info in await call.backend.list_repositories():
        if owner and info.name.split("/", 1)[0].lower() != owner.lower():
            continue
        if not access.decide(call.principal, info.name, Operation.SEARCH).allowed:
            continue  # not even named: the caller may not know it exists
        try:
            targets.append((info.name, await access.ref(call.principal, info.name, None, Operation.SEARCH)))
        except BastionError as exc:
            skipped.append(SkippedRepo(repository=info.name, reason=exc.message))
    if not targets and not skipped:
        raise AccessDenied(f"no repository{f' of {owner}' if owner else ''} is open to you for search")
    return targets, skipped


@dataclass(frozen=True, slots=True)
class _Found:
    hits: list[SearchHitOut]  # every repository's hits, repository after repository
    in_order: int  # how many of them are the first matches in that order: up to the end of the first repository
    # whose search stopped early (more of its matches come before the next repository's)
    stopped_early: bool  # some repository has more matches than were returned (or its time ran out)
    searched: list[SearchedRepo]
    skipped: list[SkippedRepo]


async def _search(
    call: ToolCall, targets: list[tuple[str, AuthorizedRef]], spec: SearchQuery, deadline: float
) -> _Found:
    gate = asyncio.Semaphore(_PARALLEL_REPOS)

    async def one(name: str, target: AuthorizedRef) -> SearchResult:
        async with gate:
            remaining = max(deadline - monotonic(), 0.1)
            allowed = call.path_filter(name, target, Operation.SEARCH)
            return await call.backend.search(name, target.sha, spec, timeout=remaining, allow_path=allowed)

    found = await asyncio.gather(*(one(name, target) for name, target in targets), return_exceptions=True)
    hits: list[SearchHitOut] = []
    searched: list[SearchedRepo] = []
    skipped: list[SkippedRepo] = []
    in_order: int | None = None
    for (name, target), outcome in zip(targets, found, strict=True):
        if isinstance(outcome, BastionError):
            skipped.append(SkippedRepo(repository=name, reason=outcome.message))
            continue
        if isinstance(outcome, BaseException):
            raise outcome
        searched.append(
            SearchedRepo(
                repository=name,
                ref=target.label,
                resolved_sha=target.sha,
                engine=outcome.engine,
                truncated=outcome.truncated,
            )
        )
        hits.extend(
            SearchHitOut(repository=name, path=h.path, line_number=h.line_number, line=h.line, resolved_sha=target.sha)
            for h in outcome.hits
        )
        if outcome.truncated and in_order is None:
            in_order = len(hits)
    stopped_early = in_order is not None
    return _Found(hits, len(hits) if in_order is None else in_order, stopped_early, searched, skipped)


def _told(found: _Found, guarded: GuardedHits | None, answer: set[int], exhausted: bool) -> list[SearchedRepo]:
    """Each repository's `truncated` as the answer has it: it has matches the answer does not show, not whether the
    last of several searches stopped at its limit (which depends on how many hits the guard left out). When the
    searches ran out (time, or the most a search is run again for), a search that stopped early says so."""
    left: set[str] = set()
    for index, hit in enumerate(found.hits):
        if index not in answer and (guarded is None or guarded.counts(index)):
            left.add(hit.repository)
    return [
        repo.model_copy(update={"truncated": repo.repository in left or (exhausted and repo.truncated)})
        for repo in found.searched
    ]


async def search_code(
    call: ToolCall,
    query: str,
    owner: str | None,
    repo: str | None,
    ref: str | None,
    path_glob: str | None,
    regex: bool,
    case_sensitive: bool,
    max_results: int,
) -> CallToolResult:
    settings = call.services.settings.repos
    limit = min(max_results, settings.max_search_results)
    _query(query, regex, case_sensitive, path_glob, limit)  # refused before anything is asked of policy
    targets, skipped = await _targets(call, owner, repo, ref)
    deadline = monotonic() + settings.search_timeout_seconds
    # One more than asked for, to know whether there are more; more again when the guard left hits out (below).
    fetch, most = limit + 1, limit * GUARD_FETCH_FACTOR
    while True:
        spec = _query(query, regex, case_sensitive, path_glob, fetch)
        found = await _search(call, targets, spec, deadline)
        for key in ("redactions", "redactions_total"):  # the audit record tells of the last search's hits
            call.metadata.pop(key, None)
        guarded = None
        if guard_enabled(call):
            engines = {s.repository: s.engine for s in found.searched}
            guarded = await guard_search_hits(call, found.hits, dict(targets), spec, engines)
        entries = [i for i in range(found.in_order) if guarded is None or guarded.counts(i)]
        # Hits the guard leaves out must not take places among the first `limit`: which hits come back, and
        # `truncated`, would then tell whether a guess at a masked value was right. Search again for more, until
        # the answer is that of the masked text (more than `limit` matches, or all of them).
        if len(entries) > limit or not found.stopped_early or fetch >= most or monotonic() >= deadline:
            break
        fetch = min(fetch * 4, most)
    answer = entries[:limit]
    truncated = len(entries) > limit or found.stopped_early
    if guarded is None:
        hits, withheld = [found.hits[i] for i in answer], 0
    else:
        hits = [guarded.shown[i] for i in answer if i in guarded.shown]
        withheld = sum(1 for i in answer if i in guarded.withheld)
    searched = _told(found, guarded, set(answer), exhausted=len(entries) <= limit and found.stopped_early)
    skipped = [*skipped, *found.skipped]
    call.metadata.update({"query_length": len(query), "regex": regex, "repositories": len(searched), "hits": len(hits)})
    if withheld:
        call.metadata["withheld_by_redaction"] = withheld
    call.paths = sorted({f"{h.repository}:{h.path}" for h in hits})[:100]
    call.bytes_returned = sum(len(h.line) for h in hits)
    out = SearchOut(
        query=query,
        hits=hits,
        truncated=truncated,
        searched=searched,
        skipped=skipped,
        withheld_by_redaction=withheld,
    )
    where = ", ".join(f"{s.repository}@{s.ref} ({s.resolved_sha[:12]})" for s in searched) or "nothing"
    lines = [f"{len(hits)} matches for {query!r} in {where}{' (truncated)' if truncated else ''}"]
    lines.extend(f"{h.repository}:{h.path}:{h.line_number}: {h.line}" for h in hits)
    lines.extend(f"skipped {s.repository}: {s.reason}" for s in skipped)
    if withheld:
        lines.append(
            f"({withheld} matches withheld: their files contain credentials and policy requires strict handling)"
        )
    return result(out, "\n".join(lines))
