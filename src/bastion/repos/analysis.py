"""`analyze`: languages, sizes, contributors and activity of a repository at one commit.

Two git processes (a recursive listing, shared with list_tree's cache, and one `git log` of author names and
dates) and a pass in Python; the result is cached per SHA. Activity windows (last 30/90 days, 12 weekly buckets)
are relative to now, so a cached result is recomputed after `ACTIVITY_TTL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bastion.repos.gitcmd import run_git
from bastion.repos.handle import MirrorHandle
from bastion.repos.languages import language_of
from bastion.repos.trees import tree_entries
from bastion.repos.types import Contributor, RepoAnalysis, TreeEntry

__all__ = ["ACTIVITY_TTL_SECONDS", "analyze", "summarize"]

ACTIVITY_TTL_SECONDS = 3600.0
TOP_CONTRIBUTORS = 10
LARGEST_FILES = 10
WEEKS = 12
# `git log` output read for contributors and activity (about 30 bytes a commit: some two million commits)
MAX_LOG_OUTPUT = 64 * 1024 * 1024


_FilesSummary = tuple[int, int, dict[str, int], dict[str, int], tuple[TreeEntry, ...]]


def _files_summary(entries: tuple[TreeEntry, ...]) -> _FilesSummary:
    files = [entry for entry in entries if entry.type == "blob"]
    language_bytes: Counter[str] = Counter()
    language_files: Counter[str] = Counter()
    for entry in files:
        if entry.mode == "120000":  # a symlink holds a path, not code
            continue
        language = language_of(entry.path)
        if language is not None:
            language_bytes[language] += entry.size or 0
            language_files[language] += 1
    largest = tuple(heapq.nsmallest(LARGEST_FILES, files, key=lambda entry: (-(entry.size or 0), entry.path)))
    total = sum(entry.size or 0 for entry in files)
    by_bytes = dict(sorted(language_bytes.items(), key=lambda item: (-item[1], item[0])))
    by_files = dict(sorted(language_files.items(), key=lambda item: (-item[1], item[0])))
    return len(files), total, by_bytes, by_files, largest


def summarize(sha: str, entries: tuple[TreeEntry, ...], history: list[tuple[int, str]], now: datetime) -> RepoAnalysis:
    """The analysis from a recursive listing and (author timestamp, author name) pairs, newest first."""
    file_count, total_bytes, languages, files_by_language, largest = _files_summary(entries)
    authors = Counter(name for _, name in history)
    contributors = tuple(
        Contributor(name, count)
        for name, count in sorted(authors.items(), key=lambda item: (-item[1], item[0]))[:TOP_CONTRIBUTORS]
    )
    stamps = [stamp for stamp, _ in history]
    now_stamp = now.timestamp()
    week = timedelta(weeks=1).total_seconds()
    weekly = [0] * WEEKS
    for stamp in stamps:
        age_weeks = int((now_stamp - stamp) // week)
        if 0 <= age_weeks < WEEKS:
            weekly[WEEKS - 1 - age_weeks] += 1
    return RepoAnalysis(
        sha=sha,
        file_count=file_count,
        total_bytes=total_bytes,
        languages=languages,
        files_by_language=files_by_language,
        largest_files=largest,
        contributors=contributors,
        commit_count=len(history),
        first_commit_at=datetime.fromtimestamp(min(stamps), UTC) if stamps else None,
        last_commit_at=datetime.fromtimestamp(max(stamps), UTC) if stamps else None,
        commits_last_30_days=sum(1 for stamp in stamps if 0 <= now_stamp - stamp < 30 * 86400),
        commits_last_90_days=sum(1 for stamp in stamps if 0 <= now_stamp - stamp < 90 * 86400),
        weekly_commits=tuple(weekly),
    )


def _parse_history(data: bytes) -> list[tuple[int, str]]:
    history: list[tuple[int, str]] = []
    for record in data.split(b"\0"):
        stamp, sep, name = record.partition(b"\t")
        if sep and stamp.strip().isdigit():
            history.append((int(stamp), name.decode("utf-8", "replace")))
    return history


def _summarize_output(
    sha: str, entries: tuple[TreeEntry, ...], log_output: bytes, complete: bool, now: datetime
) -> RepoAnalysis:
    history = _parse_history(log_output)
    if complete:
        return summarize(sha, entries, history, now)
    # Cut by MAX_LOG_OUTPUT: the last record may be cut inside the author's name.
    return replace(summarize(sha, entries, history[:-1], now), history_complete=False)


async def analyze(handle: MirrorHandle, sha: str) -> RepoAnalysis:
    cached = handle.analyses.get(sha)
    if cached is not None and time.monotonic() - cached[0] < ACTIVITY_TTL_SECONDS:
        return cached[1]
    tree_oid, _ = await handle.reader.commit(sha)
    entries, log_run = await asyncio.gather(
        tree_entries(handle, tree_oid, True),
        run_git(
            handle.git_dir,
            ["log", "--format=%at%x09%an", "-z", sha, "--"],
            time_limit=handle.timeout,
            max_output=MAX_LOG_OUTPUT,
        ),
    )
    # A pass over every file and commit (about 5 µs each): in a worker thread, so a repository with hundreds of
    # thousands of files does not stall every other caller.
    complete = not log_run.truncated
    analysis = await asyncio.to_thread(_summarize_output, sha, entries, log_run.stdout, complete, datetime.now(UTC))
    handle.analyses.put(sha, (time.monotonic(), analysis))
    return analysis
