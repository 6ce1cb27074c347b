"""Commit history: log, one commit with its diff, the three-dot comparison, ancestry.

Each function runs at most a few git processes (concurrently where independent). Revisions passed to git
are always full SHAs from `resolve()`; caller values (author, path) go after `--` or attached with `=`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from bastion.errors import InvalidInput
from bastion.repos.backend import DiffDetail
from bastion.repos.diffs import DIFF_TREE_ARGS, parse_diff_tree
from bastion.repos.gitcmd import parse_output, run_git
from bastion.repos.handle import MirrorHandle
from bastion.repos.objects import subject_of
from bastion.repos.types import CommitDetail, CommitSummary, Comparison, FileDiff

__all__ = ["MAX_COMPARE_COMMITS", "MAX_LOG_LIMIT", "commit_detail", "compare", "is_ancestor", "log"]

MAX_LOG_LIMIT = 1000
MAX_COMPARE_COMMITS = 250  # what GitHub's compare API returns at most
MAX_DIFF_OUTPUT = 32 * 1024 * 1024  # a vendored dump in one commit must not fill memory
MAX_DIFF_FILES = 3000  # files listed per commit or comparison (GitHub's per-commit limit); more set files_truncated
MAX_AUTHOR_LENGTH = 200
# One record per commit, fields NUL-separated, records NUL-terminated (-z).
_LOG_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", "%cn", "%cI", "%B")
LOG_FORMAT = "--format=" + "%x00".join(_LOG_FIELDS)


def _git_date(value: datetime) -> str:
    """An unambiguous date for --since/--until (naive datetimes are taken as UTC)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


def parse_log(data: bytes) -> list[CommitSummary]:
    tokens = data.split(b"\0")
    width = len(_LOG_FIELDS)
    commits: list[CommitSummary] = []
    for start in range(0, len(tokens) - width + 1, width):
        sha, parents, author, email, authored, committer, committed, body = (
            token.decode("utf-8", "replace") for token in tokens[start : start + width]
        )
        sha = sha.lstrip("\n")  # git separates -z records of a custom format with NUL, but be lenient
        commits.append(
            CommitSummary(
                sha=sha,
                parents=tuple(parents.split()),
                author_name=author,
                author_email=email,
                authored_at=datetime.fromisoformat(authored),
                committer_name=committer,
                committed_at=datetime.fromisoformat(committed),
                subject=subject_of(body),
                message=body,
            )
        )
    return commits


async def log(
    handle: MirrorHandle,
    commit: str,
    *,
    path: str | None,
    author: str | None,
    since: datetime | None,
    until: datetime | None,
    skip: int,
    limit: int,
) -> list[CommitSummary]:
    if skip < 0 or limit < 1:
        raise InvalidInput("skip must be >= 0 and limit >= 1")
    args = ["log", LOG_FORMAT, "-z", "--no-color", f"--skip={skip}", f"--max-count={min(limit, MAX_LOG_LIMIT)}"]
    if author:
        if len(author) > MAX_AUTHOR_LENGTH or any(ord(char) < 0x20 for char in author):
            raise InvalidInput("author filter is too long or contains control characters")
        args += [f"--author={author}", "--fixed-strings", "--regexp-ignore-case"]
    if since is not None:
        args.append(f"--since={_git_date(since)}")
    if until is not None:
        args.append(f"--until={_git_date(until)}")
    args += [commit, "--"]
    if path:
        args.append(path)
    result = await run_git(handle.git_dir, args, time_limit=handle.timeout)
    return parse_log(result.stdout)


async def _diff_files(
    handle: MirrorHandle, old: str | None, new: str, detail: DiffDetail, path: str | None = None
) -> tuple[tuple[FileDiff, ...], bool]:
    """The changed files (at most MAX_DIFF_FILES), and whether there were more than listed."""
    if detail == "none":
        return (), False
    with_patch = detail == "full_patch"
    args = [*DIFF_TREE_ARGS]
    if with_patch:
        args.append("-p")
    args += [old, new] if old is not None else ["--root", new]
    args.append("--")
    if path:
        args.append(path)
    result = await run_git(handle.git_dir, args, time_limit=handle.timeout, max_output=MAX_DIFF_OUTPUT)
    complete = not result.truncated
    files = await parse_output(
        lambda output: parse_diff_tree(output, with_patch=with_patch, complete=complete), result.stdout
    )
    listed = await _with_sizes(handle, files[:MAX_DIFF_FILES]) if with_patch else files[:MAX_DIFF_FILES]
    # Output cut by MAX_DIFF_OUTPUT inside the per-file records (status, line counts) gives no files at all: that is
    # an incomplete list, not an empty diff. A cut inside the patches leaves every file listed (without its patch).
    return tuple(listed), len(files) > MAX_DIFF_FILES or (not complete and not files)


async def _with_sizes(handle: MirrorHandle, files: list[FileDiff]) -> list[FileDiff]:
    """Files with a patch get `size`, the larger of their two blobs (one pipelined `cat-file` batch), which policy's
    max_file_size is checked against before the patch is shown."""
    wanted = sorted({oid for f in files if f.patch is not None for oid in f.blobs})
    infos = await handle.catfile.infos(wanted)
    sizes = {oid: info.size for oid, info in zip(wanted, infos, strict=True) if info is not None}
    # A blob that cannot be sized (it should not happen) leaves the size unknown: then the patch's length is used.
    return [
        replace(f, size=max(sizes[oid] for oid in f.blobs))
        if f.patch is not None and f.blobs and all(oid in sizes for oid in f.blobs)
        else f
        for f in files
    ]


async def commit_detail(handle: MirrorHandle, sha: str, detail: DiffDetail) -> CommitDetail:
    _, summary = await handle.reader.commit(sha)
    parent = summary.parents[0] if summary.parents else None
    files, more = await _diff_files(handle, parent, sha, detail)
    return CommitDetail(commit=summary, files=files, files_truncated=more)


async def is_ancestor(handle: MirrorHandle, sha: str, tip: str) -> bool:
    if sha == tip:
        return True
    cached = handle.ancestry.get((sha, tip))
    if cached is not None:
        return cached
    result = await run_git(
        handle.git_dir, ["merge-base", "--is-ancestor", sha, tip], time_limit=handle.timeout, ok_returncodes=(0, 1)
    )
    return handle.ancestry.put((sha, tip), result.returncode == 0)


async def compare(handle: MirrorHandle, base: str, head: str, *, detail: DiffDetail, path: str | None) -> Comparison:
    await asyncio.gather(handle.reader.commit(base), handle.reader.commit(head))  # NotFound for a non-commit
    git_dir, timeout = handle.git_dir, handle.timeout
    merge_base_run, counts_run, log_run = await asyncio.gather(
        run_git(git_dir, ["merge-base", base, head], time_limit=timeout, ok_returncodes=(0, 1)),
        run_git(git_dir, ["rev-list", "--left-right", "--count", f"{base}...{head}", "--"], time_limit=timeout),
        run_git(
            git_dir,
            ["log", LOG_FORMAT, "-z", "--no-color", f"--max-count={MAX_COMPARE_COMMITS}", f"{base}..{head}", "--"],
            time_limit=timeout,
        ),
    )
    merge_base = merge_base_run.text.strip() or None if merge_base_run.returncode == 0 else None
    behind, _, ahead = counts_run.text.strip().partition("\t")
    # Without a common ancestor GitHub's three-dot compare has nothing to diff from; git's two-dot diff does.
    files, more = await _diff_files(handle, merge_base or base, head, detail, path)
    return Comparison(
        base_sha=base,
        head_sha=head,
        merge_base_sha=merge_base,
        ahead_by=int(ahead or 0),
        behind_by=int(behind or 0),
        commits=tuple(parse_log(log_run.stdout)),
        files=files,
        files_truncated=more,
    )
