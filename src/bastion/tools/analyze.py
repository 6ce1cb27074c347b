"""analyze_repository: languages, sizes, contributors and activity at one commit."""

from __future__ import annotations

from mcp_types import CallToolResult

from bastion.policy.types import Operation
from bastion.tools.call import ToolCall
from bastion.tools.models import AnalysisOut, ContributorOut
from bastion.tools.results import entry_out, iso, result

__all__ = ["analyze_repository"]


async def analyze_repository(call: ToolCall, owner: str, repo: str, ref: str | None) -> CallToolResult:
    name = await call.repository(owner, repo, Operation.ANALYZE)
    target = await call.authorize_ref(name, ref, Operation.ANALYZE)
    facts = await call.backend.analyze(name, target.sha)
    allowed = call.path_filter(name, target, Operation.READ)
    total = sum(facts.languages.values()) or 1
    out = AnalysisOut(
        repository=name,
        ref=target.label,
        resolved_sha=target.sha,
        file_count=facts.file_count,
        total_bytes=facts.total_bytes,
        languages=facts.languages,
        language_share={lang: round(100 * size / total, 1) for lang, size in facts.languages.items()},
        files_by_language=facts.files_by_language,
        # Names of files the caller may not read are not shown; their bytes still count in the totals.
        largest_files=[entry_out(e) for e in facts.largest_files if allowed(e.path)],
        contributors=[ContributorOut(name=c.name, commits=c.commits) for c in facts.contributors],
        commit_count=facts.commit_count,
        first_commit_at=iso(facts.first_commit_at),
        last_commit_at=iso(facts.last_commit_at),
        commits_last_30_days=facts.commits_last_30_days,
        commits_last_90_days=facts.commits_last_90_days,
        weekly_commits=list(facts.weekly_commits),
        history_complete=facts.history_complete,
    )
    langs = ", ".join(f"{lang} {share}%" for lang, share in list(out.language_share.items())[:6])
    people = ", ".join(f"{c.name} ({c.commits})" for c in out.contributors[:5])
    text = "\n".join(
        [
            f"{name} @ {target.label} ({target.sha[:12]})",
            f"{out.file_count} files, {out.total_bytes} bytes; languages: {langs or '-'}",
            f"{out.commit_count}{'' if out.history_complete else '+ (the newest; too long to read whole)'} commits, "
            f"last {out.last_commit_at or '-'}; "
            f"{out.commits_last_30_days} in the last 30 days, {out.commits_last_90_days} in 90",
            f"top contributors: {people or '-'}",
            "largest files: " + ", ".join(f"{e.path} ({e.size})" for e in out.largest_files[:5]),
        ]
    )
    return result(out, text)
