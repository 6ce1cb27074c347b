"""search_code: across every repository (or one) the caller may search, only in paths they may read."""

from __future__ import annotations

import asyncio
from time import monotonic

from mcp_types import CallToolResult

from bastion.errors import AccessDenied, BastionError, InvalidInput
from bastion.policy.types import Operation
from bastion.repos.names import validate_repo_name
from bastion.repos.types import SearchQuery, SearchResult
from bastion.tools.access import AuthorizedRef
from bastion.tools.call import ToolCall
from bastion.tools.guarding import guard_enabled
from bastion.tools.models import SearchedRepo, SearchHitOut, SearchOut, SkippedRepo
from bastion.tools.results import result
from bastion.tools.search_guard import guard_search_hits

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
    spec = _query(query, regex, case_sensitive, path_glob, limit)
    targets, skipped = await _targets(call, owner, repo, ref)
    deadline = monotonic() + settings.search_timeout_seconds
    gate = asyncio.Semaphore(_PARALLEL_REPOS)

    async def one(name: str, target: AuthorizedRef) -> SearchResult:
        async with gate:
            remaining = max(deadline - monotonic(), 0.1)
            allowed = call.path_filter(name, target, Operation.SEARCH)
            return await call.backend.search(name, target.sha, spec, timeout=remaining, allow_path=allowed)

    found = await asyncio.gather(*(one(name, target) for name, target in targets), return_exceptions=True)
    hits: list[SearchHitOut] = []
    searched: list[SearchedRepo] = []
    truncated = False
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
        truncated = truncated or outcome.truncated
        hits.extend(
            SearchHitOut(repository=name, path=h.path, line_number=h.line_number, line=h.line, resolved_sha=target.sha)
            for h in outcome.hits
        )
    if len(hits) > limit:
        hits, truncated = hits[:limit], True
    withheld = 0
    if guard_enabled(call):  # credentials masked; strict redaction drops hits from files that hold one
        hits, withheld = await guard_search_hits(call, hits, dict(targets), spec)
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
