"""Structured results of the tools (their `outputSchema`). Every result names the commit it was read from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "AnalysisOut",
    "CommitDetailOut",
    "CommitListOut",
    "CommitOut",
    "ComparisonOut",
    "ContributorOut",
    "DiffStats",
    "FileContentsOut",
    "FileDiffOut",
    "RefListOut",
    "RefOut",
    "RefPoint",
    "RepositoryListOut",
    "RepositoryOut",
    "SearchHitOut",
    "SearchOut",
    "SearchedRepo",
    "SkippedRepo",
    "TreeEntryOut",
    "TreeOut",
]


class RepositoryOut(BaseModel):
    name: str
    default_branch: str | None
    head_sha: str | None = Field(description="Commit the default branch points at in the mirror.")
    last_sync_at: str | None = Field(description="When the mirror last fetched successfully (ISO 8601, UTC).")
    operations: list[str] = Field(description="What the caller may do here: read, diff, analyze, search.")


class RepositoryListOut(BaseModel):
    repositories: list[RepositoryOut]


class RefOut(BaseModel):
    name: str
    sha: str


class RefListOut(BaseModel):
    repository: str
    kind: Literal["branch", "tag"]
    default_branch: str | None
    refs: list[RefOut]
    page: int
    per_page: int
    total: int = Field(description="Refs visible to the caller (before paging).")


class TreeEntryOut(BaseModel):
    path: str
    type: Literal["blob", "tree", "commit"] = Field(description="blob = file, tree = directory, commit = submodule")
    size: int | None
    sha: str | None = Field(
        description=(
            "Blob id of a file, commit of a submodule. Directories carry none: a tree id hashes every file inside, "
            "including files policy hides, so it could confirm a guess at their content."
        )
    )
    mode: str


class FileContentsOut(BaseModel):
    repository: str
    path: str
    ref: str
    resolved_sha: str = Field(description="The commit the content was read from.")
    type: Literal["file", "symlink", "directory", "submodule"]
    size: int | None = Field(description="Full size in bytes of the file (not of what was returned).")
    encoding: Literal["utf-8", "none"] = Field(description="'none' when no content is returned (binary, directory).")
    content: str | None
    truncated: bool = Field(description="True when `content` is not the whole file (budget or line range).")
    start_line: int | None = None
    end_line: int | None = None
    total_lines: int | None = None
    returned_bytes: int = 0
    binary: bool = False
    description: str | None = Field(default=None, description="What a binary file is, from its magic bytes.")
    symlink_target: str | None = None
    entries: list[TreeEntryOut] | None = Field(default=None, description="Directory listing when path is a directory.")
    omitted_by_policy: int = Field(default=0, description="Directory entries hidden because policy denies them.")


class TreeOut(BaseModel):
    repository: str
    ref: str
    resolved_sha: str
    path: str
    recursive: bool
    entries: list[TreeEntryOut]
    truncated: bool = Field(description="True when more entries existed than the listing limit.")
    omitted_by_policy: int


class CommitOut(BaseModel):
    sha: str
    parents: list[str]
    author_name: str
    author_email: str
    authored_at: str
    committer_name: str
    committed_at: str
    subject: str
    message: str


class CommitListOut(BaseModel):
    repository: str
    ref: str
    resolved_sha: str
    path: str | None
    commits: list[CommitOut]
    page: int
    per_page: int
    has_more: bool


class FileDiffOut(BaseModel):
    path: str
    old_path: str | None
    status: str
    additions: int
    deletions: int
    binary: bool
    patch: str | None = None
    patch_truncated: bool = False
    patch_withheld: str | None = Field(
        default=None, description="Why the patch is not shown (it contains credentials and policy is strict)."
    )


class DiffStats(BaseModel):
    """Over the files listed: not those hidden by policy (`omitted_by_policy`) or left out of a long list
    (`truncated`)."""

    files: int
    additions: int
    deletions: int


class CommitDetailOut(BaseModel):
    repository: str
    resolved_sha: str
    detail: Literal["none", "stats", "full_patch"]
    commit: CommitOut
    stats: DiffStats | None
    files: list[FileDiffOut]
    omitted_by_policy: int
    truncated: bool = Field(description="True when patches were cut to fit the response budget.")


class RefPoint(BaseModel):
    ref: str
    sha: str


class ComparisonOut(BaseModel):
    repository: str
    base: RefPoint
    head: RefPoint
    resolved_sha: str = Field(description="The head commit.")
    merge_base_sha: str | None
    ahead_by: int
    behind_by: int
    detail: Literal["stats", "full_patch"]
    commits: list[CommitOut]
    stats: DiffStats
    files: list[FileDiffOut]
    omitted_by_policy: int
    truncated: bool


class SearchHitOut(BaseModel):
    repository: str
    path: str
    line_number: int
    line: str
    resolved_sha: str


class SearchedRepo(BaseModel):
    repository: str
    ref: str
    resolved_sha: str
    engine: str
    truncated: bool


class SkippedRepo(BaseModel):
    repository: str
    reason: str


class SearchOut(BaseModel):
    query: str
    hits: list[SearchHitOut]
    truncated: bool
    searched: list[SearchedRepo]
    skipped: list[SkippedRepo]
    withheld_by_redaction: int = Field(
        default=0, description="Matches left out because their files contain credentials and policy is strict."
    )


class ContributorOut(BaseModel):
    name: str
    commits: int


class AnalysisOut(BaseModel):
    repository: str
    ref: str
    resolved_sha: str
    file_count: int
    total_bytes: int
    languages: dict[str, int] = Field(description="Bytes per language, largest first.")
    language_share: dict[str, float] = Field(description="Percent of bytes per language.")
    files_by_language: dict[str, int]
    largest_files: list[TreeEntryOut]
    contributors: list[ContributorOut]
    commit_count: int
    first_commit_at: str | None
    last_commit_at: str | None
    commits_last_30_days: int
    commits_last_90_days: int
    weekly_commits: list[int] = Field(description="Commits per week for the last 12 weeks, oldest first.")
    history_complete: bool = Field(
        default=True,
        description="False when the history was too long to read whole: commit counts, contributors and the first "
        "commit cover the newest commits only.",
    )
