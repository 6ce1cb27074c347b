"""Building tool results: structured content plus a short readable text for the model."""

from __future__ import annotations

from datetime import datetime

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, PrivateAttr

from bastion.repos.types import CommitSummary, FileDiff, TreeEntry
from bastion.tools.models import CommitOut, FileDiffOut, TreeEntryOut

__all__ = ["ShapedResult", "commit_out", "diff_out", "entry_out", "iso", "result"]


class ShapedResult(CallToolResult):
    """A tool result whose structured content is the JSON dump of an instance of `shape()`, so it matches that
    model's schema by construction (bastion.transport.direct relies on this instead of validating it again)."""

    _shape: type[BaseModel] | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, structured: BaseModel, text: str) -> ShapedResult:
        made = cls(content=[TextContent(type="text", text=text)], structured_content=structured.model_dump(mode="json"))
        made._shape = type(structured)
        return made

    def shape(self) -> type[BaseModel] | None:
        return self._shape


def result(structured: BaseModel, text: str) -> CallToolResult:
    return ShapedResult.of(structured, text)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def entry_out(entry: TreeEntry) -> TreeEntryOut:
    sha = None if entry.type == "tree" else entry.oid  # see TreeEntryOut.sha: a tree id is a guessing oracle
    return TreeEntryOut(path=entry.path, type=entry.type, size=entry.size, sha=sha, mode=entry.mode)


def commit_out(commit: CommitSummary) -> CommitOut:
    return CommitOut(
        sha=commit.sha,
        parents=list(commit.parents),
        author_name=commit.author_name,
        author_email=commit.author_email,
        authored_at=iso(commit.authored_at) or "",
        committer_name=commit.committer_name,
        committed_at=iso(commit.committed_at) or "",
        subject=commit.subject,
        message=commit.message,
    )


def diff_out(diff: FileDiff, patch: str | None, patch_truncated: bool) -> FileDiffOut:
    return FileDiffOut(
        path=diff.path,
        old_path=diff.old_path,
        status=diff.status,
        additions=diff.additions,
        deletions=diff.deletions,
        binary=diff.binary,
        patch=patch,
        patch_truncated=patch_truncated,
    )
