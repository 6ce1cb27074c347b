"""Value types that cross the repository-backend seam. Plain frozen dataclasses: cheap to build, easy to cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "Blob",
    "CommitDetail",
    "CommitSummary",
    "Comparison",
    "Contributor",
    "FileDiff",
    "RefKind",
    "RefSnapshot",
    "RepoAnalysis",
    "RepoInfo",
    "ResolvedRef",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
    "TreeEntry",
]

RefKind = Literal["branch", "tag", "commit"]
EntryType = Literal["blob", "tree", "commit"]  # "commit" is a submodule
DiffStatus = Literal["added", "modified", "deleted", "renamed", "copied", "type_changed"]


@dataclass(frozen=True, slots=True)
class RepoInfo:
    """A repository the server knows about. `name` is canonical `owner/repo` as registered."""

    name: str
    url: str
    default_branch: str | None
    last_sync_at: datetime | None
    last_sync_error: str | None = None
    head_sha: str | None = None


@dataclass(frozen=True, slots=True)
class RefSnapshot:
    """All branches and tags of a repository at one moment, each mapped to the commit it points at
    (annotated tags already peeled)."""

    branches: dict[str, str]
    tags: dict[str, str]
    default_branch: str | None

    def tip(self, full_ref: str) -> str | None:
        if full_ref.startswith("refs/heads/"):
            return self.branches.get(full_ref.removeprefix("refs/heads/"))
        if full_ref.startswith("refs/tags/"):
            return self.tags.get(full_ref.removeprefix("refs/tags/"))
        return None


@dataclass(frozen=True, slots=True)
class ResolvedRef:
    """What a caller's `ref` turned into. `full_name` is `refs/heads/x` or `refs/tags/x` (None for a raw SHA)."""

    kind: RefKind
    full_name: str | None
    sha: str

    @property
    def short_name(self) -> str:
        if self.full_name is None:
            return self.sha
        return self.full_name.removeprefix("refs/heads/").removeprefix("refs/tags/")


@dataclass(frozen=True, slots=True)
class Blob:
    """A file's bytes at a commit. `data` holds at most the bytes that were asked for; `size` is the full size."""

    path: str
    oid: str
    size: int
    data: bytes
    mode: str = "100644"

    @property
    def is_symlink(self) -> bool:
        return self.mode == "120000"


@dataclass(frozen=True, slots=True)
class TreeEntry:
    path: str
    type: EntryType
    mode: str
    oid: str
    size: int | None  # None for trees and submodules


@dataclass(frozen=True, slots=True)
class CommitSummary:
    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    authored_at: datetime
    committer_name: str
    committed_at: datetime
    subject: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class FileDiff:
    """One file of a diff. `patch` is the unified diff hunk text (None when not asked or binary). `size` is what
    policy's max_file_size is checked against before a patch is shown (bastion.tools.history)."""

    path: str
    status: DiffStatus
    additions: int
    deletions: int
    old_path: str | None = None
    binary: bool = False
    patch: str | None = None
    # What the source knows beyond the diff itself (the mirror does, GitHub's API does not): not part of equality.
    blobs: tuple[str, ...] = field(default=(), compare=False)  # object ids of the file before and after
    size: int | None = field(default=None, compare=False)  # the larger of the two blobs' sizes in bytes


@dataclass(frozen=True, slots=True)
class CommitDetail:
    commit: CommitSummary
    files: tuple[FileDiff, ...] = ()
    files_truncated: bool = False  # the source listed only some changed files (GitHub: at most 3,000 per commit)


@dataclass(frozen=True, slots=True)
class Comparison:
    """`base...head` as GitHub shows it: the diff from the merge base to head, plus ahead/behind counts."""

    base_sha: str
    head_sha: str
    merge_base_sha: str | None
    ahead_by: int
    behind_by: int
    commits: tuple[CommitSummary, ...]
    files: tuple[FileDiff, ...]
    files_truncated: bool = False  # the source listed only some changed files (GitHub: at most 300 per comparison)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    pattern: str
    regex: bool = False
    case_sensitive: bool = False
    path_glob: str | None = None
    max_results: int = 50


@dataclass(frozen=True, slots=True)
class SearchHit:
    path: str
    line_number: int
    line: str


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: tuple[SearchHit, ...]
    truncated: bool  # more matches existed than were returned, or the time budget ran out
    engine: Literal["ripgrep", "git-grep", "github"] = "ripgrep"


@dataclass(frozen=True, slots=True)
class Contributor:
    name: str
    commits: int


@dataclass(frozen=True, slots=True)
class RepoAnalysis:
    """Facts about one commit of a repository. Computed once per SHA and cached."""

    sha: str
    file_count: int
    total_bytes: int
    languages: dict[str, int]  # language -> bytes, largest first
    files_by_language: dict[str, int]
    largest_files: tuple[TreeEntry, ...]
    contributors: tuple[Contributor, ...]
    commit_count: int
    first_commit_at: datetime | None
    last_commit_at: datetime | None
    commits_last_30_days: int
    commits_last_90_days: int
    weekly_commits: tuple[int, ...] = field(default=())  # last 12 weeks, oldest first
    history_complete: bool = True  # False: the history was too long to read whole; counts cover the newest commits
