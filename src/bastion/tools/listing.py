"""list_repositories, list_branches, list_tags."""

from __future__ import annotations

from typing import Literal

from mcp_types import CallToolResult

from bastion.policy.types import Operation
from bastion.tools.call import ToolCall
from bastion.tools.models import RefListOut, RefOut, RepositoryListOut, RepositoryOut
from bastion.tools.results import iso, result

__all__ = ["list_refs", "list_repositories"]


async def list_repositories(call: ToolCall) -> CallToolResult:
    access = call.services.access
    listed: list[RepositoryOut] = []
    for info in await call.backend.list_repositories():
        operations = [op.value for op in Operation if access.decide(call.principal, info.name, op).allowed]
        if operations:
            # The head commit only when the caller may read the default branch: its id is not the caller's to know
            # otherwise (it would, for instance, confirm guesses at what that branch holds).
            head_visible = info.default_branch is not None and any(
                access.decide(call.principal, info.name, Operation(op), ref=f"refs/heads/{info.default_branch}").allowed
                for op in operations
            )
            listed.append(
                RepositoryOut(
                    name=info.name,
                    default_branch=info.default_branch,
                    head_sha=info.head_sha if head_visible else None,
                    last_sync_at=iso(info.last_sync_at),
                    operations=operations,
                )
            )
    call.metadata["visible"] = len(listed)
    lines = [
        f"{repo.name} (default branch {repo.default_branch or '-'}, {repo.head_sha[:12] if repo.head_sha else '-'};"
        f" you may: {', '.join(repo.operations)})"
        for repo in listed
    ]
    text = "\n".join([f"{len(listed)} repositories you may use:", *lines]) if listed else "no repositories you may use"
    return result(RepositoryListOut(repositories=listed), text)


async def list_refs(
    call: ToolCall, owner: str, repo: str, kind: Literal["branch", "tag"], page: int, per_page: int
) -> CallToolResult:
    name = await call.repository(owner, repo, Operation.READ)
    snapshot = await call.backend.refs(name)
    source = snapshot.branches if kind == "branch" else snapshot.tags
    prefix = "refs/heads/" if kind == "branch" else "refs/tags/"
    access = call.services.access
    visible = [
        RefOut(name=ref_name, sha=sha)
        for ref_name, sha in sorted(source.items())
        if access.decide(call.principal, name, Operation.READ, ref=prefix + ref_name).allowed
    ]
    # Refs the caller may not read are left out without a trace: neither their names nor how many there are
    # (a repository with none visible answers like one with none at all).
    start = (page - 1) * per_page
    shown = visible[start : start + per_page]
    default = snapshot.default_branch if kind == "branch" else None
    out = RefListOut(
        repository=name,
        kind=kind,
        default_branch=snapshot.default_branch,
        refs=shown,
        page=page,
        per_page=per_page,
        total=len(visible),
    )
    plural = "branches" if kind == "branch" else "tags"
    lines = [f"{ref.name} {ref.sha[:12]}{' (default)' if ref.name == default else ''}" for ref in shown]
    header = f"{name}: {len(visible)} {plural} visible to you; page {page} ({len(shown)} shown)"
    if not visible:
        header = f"{name}: no {plural} visible to you (policy lists only the {plural} you may read)"
    return result(out, "\n".join([header, *lines]))
