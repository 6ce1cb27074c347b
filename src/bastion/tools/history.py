"""list_commits, get_commit, compare_refs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from mcp_types import CallToolResult

from bastion.errors import InvalidInput
from bastion.policy.engine import WHOLE_FILE_NOTE
from bastion.policy.types import Operation
from bastion.repos.types import FileDiff
from bastion.tools.access import AuthorizedRef
from bastion.tools.call import ToolCall
from bastion.tools.guarding import PatchGuard, guard_commits, patch_guard
from bastion.tools.models import CommitDetailOut, CommitListOut, ComparisonOut, DiffStats, FileDiffOut, RefPoint
from bastion.tools.results import commit_out, diff_out, result

__all__ = ["compare_refs", "get_commit", "list_commits", "parse_moment"]


# The repository source (GitHub's API: 300 files per comparison, 3,000 per commit) listed only part of the diff.
_INCOMPLETE = "(the file list is incomplete: the repository source lists only the first changed files)"
_YIELD_EVERY = 256  # files judged between turns of the event loop


def parse_moment(raw: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or date-time (UTC when no offset is given)."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise InvalidInput(
            f"{name} must be an ISO 8601 date or date-time like 2026-01-31 or 2026-01-31T12:00:00Z"
        ) from None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:  # git is asked in UTC, where a moment at either end of the calendar falls off it (0001-01-01T00:00+01:00)
        aware.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name} is outside the years 1 to 9999 once converted to UTC") from None
    return aware


async def list_commits(
    call: ToolCall,
    owner: str,
    repo: str,
    ref: str | None,
    path: str | None,
    author: str | None,
    since: str | None,
    until: str | None,
    page: int,
    per_page: int,
) -> CallToolResult:
    name = await call.repository(owner, repo, Operation.READ)
    target = await call.authorize_ref(name, ref, Operation.READ)
    clean = call.authorize_path(name, target, path, Operation.READ) if path else None
    if author is not None and ("\x00" in author or "\n" in author or len(author) > 200):
        raise InvalidInput("author must be a single line of at most 200 characters")
    after, before = parse_moment(since, "since"), parse_moment(until, "until")
    if after and before and before < after:
        raise InvalidInput("until is before since")
    commits = await call.backend.log(
        name,
        target.sha,
        path=clean or None,
        author=author or None,
        since=after,
        until=before,
        skip=(page - 1) * per_page,
        limit=per_page + 1,
    )
    shown = await guard_commits(call, commits[:per_page], target.decision.redaction)
    out = CommitListOut(
        repository=name,
        ref=target.label,
        resolved_sha=target.sha,
        path=clean or None,
        commits=[commit_out(c) for c in shown],
        page=page,
        per_page=per_page,
        has_more=len(commits) > per_page,
    )
    header = f"{name} @ {target.label} ({target.sha[:12]}){f' -- {clean}' if clean else ''}: page {page}"
    lines = [f"{c.sha[:12]} {c.authored_at.date()} {c.author_name}: {c.subject}" for c in shown]
    if out.has_more:
        lines.append(f"(more: page={page + 1})")
    return result(out, "\n".join([header, *lines]))


def _patch_refusal(
    call: ToolCall, repo: str, targets: Sequence[AuthorizedRef], operation: Operation
) -> Callable[[FileDiff], str | None]:
    """Why a file's patch must be withheld (None: it may be shown). A diff carries no more of a file than a read
    may: each of the file's paths must allow `operation` at every ref asked about, for the file's size (the larger
    side's blob; the patch's own length where the source does not say), under the rule that covers that path."""
    access, principal = call.services.access, call.principal

    def refusal(diff: FileDiff) -> str | None:
        size = diff.size if diff.size is not None else len((diff.patch or "").encode())
        for path in dict.fromkeys((diff.path, diff.old_path or diff.path)):
            for target in targets:
                decision = access.decide(principal, repo, operation, ref=target.policy_ref, path=path, size=size)
                if not decision.allowed:
                    return f"patch withheld: {decision.reason.removesuffix(WHOLE_FILE_NOTE)}"
        return None

    return refusal


async def _budgeted(
    files: Sequence[FileDiff],
    allowed: Callable[[str], bool],
    budget: int,
    guard: PatchGuard,
    refusal: Callable[[FileDiff], str | None],
) -> tuple[list[FileDiffOut], int, bool]:
    """Files the caller may see, with patches guarded (credentials masked, or withheld under strict redaction)
    and then cut to fit `budget` bytes in total: masked first, so a cut never leaves part of a credential. A patch
    the policy would not let the caller read as a file (`refusal`: its size) is withheld."""
    shown: list[FileDiffOut] = []
    hidden = 0
    truncated = False
    remaining = budget
    for index, diff in enumerate(files):
        if index and not index % _YIELD_EVERY:
            await asyncio.sleep(0)  # a few thousand policy checks: let other callers in between
        if not allowed(diff.path) or (diff.old_path is not None and not allowed(diff.old_path)):
            hidden += 1
            continue
        patch, cut, withheld = diff.patch, False, None
        if patch is not None:
            withheld = refusal(diff)
            patch = None if withheld else patch
        if patch is not None and remaining > 0:
            patch, withheld = await guard(diff)
        if patch is not None:
            encoded = patch.encode()
            if len(encoded) > remaining:
                patch = encoded[: max(remaining, 0)].decode("utf-8", errors="ignore") if remaining > 0 else None
                cut = truncated = True
            remaining -= len(encoded)
        out = diff_out(diff, patch, cut)
        shown.append(out.model_copy(update={"patch_withheld": withheld}) if withheld else out)
    return shown, hidden, truncated


def _stats(files: Sequence[FileDiffOut]) -> DiffStats:
    return DiffStats(
        files=len(files), additions=sum(f.additions for f in files), deletions=sum(f.deletions for f in files)
    )


def _file_lines(files: Sequence[FileDiffOut]) -> list[str]:
    lines: list[str] = []
    for f in files:
        moved = f"{f.old_path} -> " if f.old_path and f.old_path != f.path else ""
        lines.append(f"{f.status:9} {moved}{f.path} (+{f.additions} -{f.deletions}){' binary' if f.binary else ''}")
        if f.patch:
            lines.append(f.patch.rstrip("\n"))
        if f.patch_withheld:
            lines.append(f"({f.patch_withheld})")
    return lines


async def get_commit(
    call: ToolCall, owner: str, repo: str, sha: str, detail: Literal["none", "stats", "full_patch"]
) -> CallToolResult:
    operation = Operation.DIFF if detail == "full_patch" else Operation.READ
    name = await call.repository(owner, repo, operation)
    target = await call.authorize_ref(name, sha, operation)
    found = await call.backend.commit(name, target.sha, detail)
    allowed = call.path_filter(name, target, operation)
    parent = found.commit.parents[0] if found.commit.parents else None
    guard = patch_guard(call, name, parent, target.sha, [target])
    refusal = _patch_refusal(call, name, [target], operation)
    files, hidden, truncated = await _budgeted(
        found.files, allowed, call.services.settings.repos.max_patch_bytes, guard, refusal
    )
    [commit] = await guard_commits(call, [found.commit], target.decision.redaction)
    call.paths = [f.path for f in files][:100]
    call.bytes_returned = sum(len(f.patch or "") for f in files)
    out = CommitDetailOut(
        repository=name,
        resolved_sha=target.sha,
        detail=detail,
        commit=commit_out(commit),
        stats=_stats(files) if detail != "none" else None,
        files=files if detail != "none" else [],
        omitted_by_policy=hidden,
        truncated=truncated or found.files_truncated,
    )
    c = commit
    header = [f"commit {c.sha}", f"Author: {c.author_name} <{c.author_email}>", f"Date:   {out.commit.authored_at}", ""]
    header.append(c.message.rstrip("\n") or c.subject)
    if detail != "none":
        header.append("")
        header.extend(_file_lines(files))
    header.extend(_file_list_notes(hidden, found.files_truncated))
    return result(out, "\n".join(header))


def _file_list_notes(hidden: int, incomplete: bool) -> list[str]:
    """What the text of a commit or a comparison says about files it does not list."""
    notes = [f"({hidden} files hidden by policy)"] if hidden else []
    return [*notes, _INCOMPLETE] if incomplete else notes


async def compare_refs(
    call: ToolCall,
    owner: str,
    repo: str,
    base: str,
    head: str,
    detail: Literal["stats", "full_patch"],
    path: str | None,
) -> CallToolResult:
    name = await call.repository(owner, repo, Operation.DIFF)
    base_ref = await call.authorize_ref(name, base, Operation.DIFF)
    head_ref = await call.authorize_ref(name, head, Operation.DIFF)
    clean = call.authorize_path(name, head_ref, path, Operation.DIFF) if path else None
    found = await call.backend.compare(name, base_ref.sha, head_ref.sha, detail=detail, path=clean or None)
    allowed_base = call.path_filter(name, base_ref, Operation.DIFF)
    allowed_head = call.path_filter(name, head_ref, Operation.DIFF)
    guard = patch_guard(call, name, found.merge_base_sha or base_ref.sha, head_ref.sha, [base_ref, head_ref])
    files, hidden, truncated = await _budgeted(
        found.files,
        lambda p: allowed_base(p) and allowed_head(p),
        call.services.settings.repos.max_patch_bytes,
        guard,
        _patch_refusal(call, name, [base_ref, head_ref], Operation.DIFF),
    )
    strictest = "strict" if "strict" in (base_ref.decision.redaction, head_ref.decision.redaction) else "mask"
    commits = await guard_commits(call, found.commits, strictest)
    call.ref = f"{base_ref.label}...{head_ref.label}"
    call.paths = [f.path for f in files][:100]
    call.bytes_returned = sum(len(f.patch or "") for f in files)
    out = ComparisonOut(
        repository=name,
        base=RefPoint(ref=base_ref.label, sha=base_ref.sha),
        head=RefPoint(ref=head_ref.label, sha=head_ref.sha),
        resolved_sha=head_ref.sha,
        merge_base_sha=found.merge_base_sha,
        ahead_by=found.ahead_by,
        behind_by=found.behind_by,
        detail=detail,
        commits=[commit_out(c) for c in commits],
        stats=_stats(files),
        files=files,
        omitted_by_policy=hidden,
        truncated=truncated or found.files_truncated,
    )
    header = [
        f"{name}: {base_ref.label} ({base_ref.sha[:12]})...{head_ref.label} ({head_ref.sha[:12]})",
        f"{head_ref.label} is {found.ahead_by} commits ahead and {found.behind_by} behind; "
        f"{out.stats.files} files changed, +{out.stats.additions} -{out.stats.deletions}"
        + (" (counting the files listed below)" if hidden or found.files_truncated else ""),
    ]
    header.extend(f"{c.sha[:12]} {c.subject}" for c in commits)
    header.append("")
    header.extend(_file_lines(files))
    header.extend(_file_list_notes(hidden, found.files_truncated))
    return result(out, "\n".join(header))
