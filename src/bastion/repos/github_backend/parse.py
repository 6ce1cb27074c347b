"""GitHub REST JSON -> the backend's value types. Pure functions; a malformed answer raises `Unavailable`.

Semantics kept equal to the mirror backend's: modes as six digits, `type` "commit" for submodules, sizes only for
blobs, file statuses in git's words (GitHub's `removed` is `deleted`, `changed` is `type_changed`), patches from
the first hunk header, binary files without a patch. GitHub reports dates in UTC (`...Z`); they are the same
instants git records, without the author's own offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bastion.errors import Unavailable
from bastion.repos.objects import entry_type, subject_of
from bastion.repos.types import CommitSummary, DiffStatus, FileDiff, TreeEntry

__all__ = ["commit_summary", "file_diff", "parse_time", "tree_entry"]

_STATUS: dict[str, DiffStatus] = {
    "added": "added",
    "removed": "deleted",
    "modified": "modified",
    "renamed": "renamed",
    "copied": "copied",
    "changed": "type_changed",
    "unchanged": "modified",
}


def _field(data: Any, *names: str) -> Any:
    value = data
    for name in names:
        if not isinstance(value, Mapping) or name not in value:
            raise Unavailable(f"GitHub's answer lacks '{'.'.join(names)}'; the API may have changed")
        value = value[name]
    return value


def parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        return datetime.fromtimestamp(0, UTC)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def commit_summary(data: Any) -> CommitSummary:
    """A commit object from `/commits`, `/commits/{ref}` or `/compare` (`commit` holds the git data)."""
    commit = _field(data, "commit")
    message = str(commit.get("message") or "")
    author = commit.get("author") or {}
    committer = commit.get("committer") or {}
    return CommitSummary(
        sha=str(_field(data, "sha")),
        parents=tuple(str(parent["sha"]) for parent in data.get("parents") or [] if isinstance(parent, Mapping)),
        author_name=str(author.get("name") or ""),
        author_email=str(author.get("email") or ""),
        authored_at=parse_time(author.get("date")),
        committer_name=str(committer.get("name") or ""),
        committed_at=parse_time(committer.get("date")),
        subject=subject_of(message),
        message=message,
    )


def file_diff(data: Any, *, with_patch: bool) -> FileDiff:
    """One entry of a commit's or a comparison's `files`."""
    status = _STATUS.get(str(data.get("status")), "modified")
    additions, deletions = int(data.get("additions") or 0), int(data.get("deletions") or 0)
    patch = data.get("patch")
    # GitHub omits `patch` for binary files and for diffs too large to show; binary ones also count no lines.
    binary = patch is None and additions == 0 and deletions == 0 and status in ("added", "deleted", "modified")
    text: str | None = None
    if with_patch and isinstance(patch, str):
        text = patch if patch.endswith("\n") else patch + "\n"
    previous = data.get("previous_filename")
    return FileDiff(
        path=str(_field(data, "filename")),
        status=status,
        additions=additions,
        deletions=deletions,
        old_path=str(previous) if previous is not None and status in ("renamed", "copied") else None,
        binary=binary,
        patch=text,
    )


def tree_entry(data: Any, prefix: str = "") -> TreeEntry:
    """One entry of a git trees API answer; `prefix` is the directory the tree sits at ("" for the root)."""
    mode = str(_field(data, "mode")).rjust(6, "0")
    kind = entry_type(mode)
    path = str(_field(data, "path"))
    size = data.get("size")
    return TreeEntry(
        path=f"{prefix}/{path}" if prefix else path,
        type=kind,
        mode=mode,
        oid=str(_field(data, "sha")),
        size=int(size) if kind == "blob" and size is not None else None,
    )
