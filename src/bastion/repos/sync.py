"""Creating and refreshing mirrors: `git fetch` of branches and tags only, then the steps that keep reads cheap.

A sync is: `ls-remote --symref` (the default branch may have changed), `fetch --prune --atomic` (all ref
updates or none, so a failed fetch leaves the previous state), `pack-refs --all --prune` (so the server reads
refs from one file), a new worktree of the default branch for ripgrep, then the sync marker (which tells a
running server to reload refs and restart its cat-file process) and the registry entry. A new mirror is built
under a temporary name and renamed into place only when all of that succeeded. One sync per repository at a
time, across processes (an fcntl lock beside the mirror).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.config import Settings
from bastion.errors import BastionError, InvalidInput, Unavailable
from bastion.repos.gitcmd import run_git
from bastion.repos.names import validate_repo_name
from bastion.repos.refs import SYNC_MARKER, read_ref_files
from bastion.repos.registry import (
    Registry,
    mirror_path,
    name_from_url,
    new_record,
    validate_remote_url,
    worktree_root,
)
from bastion.repos.types import RepoInfo
from bastion.repos.worktree import update_worktree
from bastion.store.db import ensure_private_dir

if TYPE_CHECKING:
    from bastion.github.git_auth import GitAuth, GitRemoteAuth

__all__ = [
    "ProgressCallback",
    "SyncProgress",
    "add_repository",
    "run_scheduled_sync",
    "sync_all",
    "sync_repository",
]

log = logging.getLogger(__name__)

_FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")  # never refs/pull/* or others
_MIRROR_CONFIG = (
    ("remote.origin.tagOpt", "--no-tags"),  # tags come from the refspec above, nothing else
    ("core.logAllRefUpdates", "false"),
    ("gc.autoDetach", "false"),  # auto-gc runs inside the sync (under its lock), not behind it
    ("fetch.writeCommitGraph", "true"),  # keeps `git log` / merge-base fast as history grows
)
_PROGRESS_LINE = re.compile(r"^(?:remote: )?(?P<phase>[A-Za-z][A-Za-z ]+):\s+(?P<percent>\d{1,3})%")


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """One progress report: the step a repository's sync is in, with git's percentage when it gives one."""

    repo: str
    step: str
    percent: float | None = None


ProgressCallback = Callable[[SyncProgress], None]


def _report(progress: ProgressCallback | None, repo: str, step: str, percent: float | None = None) -> None:
    if progress is not None:
        progress(SyncProgress(repo, step, percent))


@contextlib.asynccontextmanager
async def _sync_lock(git_dir: Path, wait_limit: float) -> AsyncGenerator[None]:
    """Exclusive per-repository lock shared by the CLI and servers (polled, so the event loop never blocks)."""
    lock_path = git_dir.with_name(git_dir.name + ".lock")
    ensure_private_dir(lock_path.parent)
    deadline = time.monotonic() + wait_limit
    with lock_path.open("a") as lock_file:
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Unavailable(f"another sync of {git_dir.name} is still running") from None
                await asyncio.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _remote_auth(settings: Settings, auth: GitRemoteAuth | None) -> GitRemoteAuth:
    """The server passes its shared one (one token cache); the CLI builds one from the settings."""
    if auth is not None:
        return auth
    from bastion.github.setup import git_auth_from_settings

    return git_auth_from_settings(settings)


def _auth_options(auth: GitAuth | None) -> dict[str, Any]:
    """`config=` and `env=` for a git command that talks to the remote (the credential helper, docs/github-app.md)."""
    return {"config": auth.config, "env": dict(auth.env)} if auth is not None else {}


async def _remote_default_branch(
    settings: Settings, remote: str, git_dir: Path | None, auth: GitAuth | None = None
) -> str | None:
    """The branch the remote's HEAD points at (None for an empty repository)."""
    result = await run_git(
        git_dir,
        ["ls-remote", "--symref", "--", remote, "HEAD"],
        time_limit=settings.repos.fetch_timeout_seconds,
        **_auth_options(auth),
    )
    for line in result.text.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line.removeprefix("ref: refs/heads/").removesuffix("\tHEAD")
    return None


async def _configure(settings: Settings, git_dir: Path, url: str) -> None:
    timeout = settings.repos.git_timeout_seconds
    await run_git(None, ["init", "--bare", "--quiet", str(git_dir)], time_limit=timeout)
    await run_git(git_dir, ["config", "remote.origin.url", url], time_limit=timeout)
    await run_git(git_dir, ["config", "remote.origin.fetch", _FETCH_REFSPECS[0]], time_limit=timeout)
    await run_git(git_dir, ["config", "--add", "remote.origin.fetch", _FETCH_REFSPECS[1]], time_limit=timeout)
    for key, value in _MIRROR_CONFIG:
        await run_git(git_dir, ["config", key, value], time_limit=timeout)


def _write_marker(git_dir: Path) -> None:
    """Replace (new inode) the marker, so a server notices even within one mtime tick."""
    temp = git_dir / f".{SYNC_MARKER}.{secrets.token_hex(4)}"
    temp.write_text(datetime.now(UTC).isoformat() + "\n", encoding="utf-8")
    os.replace(temp, git_dir / SYNC_MARKER)


async def _refresh(
    settings: Settings, name: str, git_dir: Path, progress: ProgressCallback | None, auth: GitAuth | None = None
) -> tuple[str | None, str | None]:
    """Fetch into an existing (or just initialised) mirror and bring refs, worktree and marker up to date.
    Returns (default branch, its head SHA); both None for an empty remote."""
    repos = settings.repos
    _report(progress, name, "resolving default branch")
    default_branch = await _remote_default_branch(settings, "origin", git_dir, auth)
    if default_branch is not None:
        await run_git(
            git_dir, ["symbolic-ref", "HEAD", f"refs/heads/{default_branch}"], time_limit=repos.git_timeout_seconds
        )

    def on_stderr(line: str) -> None:
        match = _PROGRESS_LINE.match(line)
        if match is not None:
            _report(progress, name, f"fetching: {match['phase'].strip().lower()}", float(match["percent"]))

    _report(progress, name, "fetching")
    await run_git(
        git_dir,
        ["fetch", "--prune", "--atomic", "--progress", "--no-write-fetch-head", "--no-recurse-submodules", "origin"],
        time_limit=repos.fetch_timeout_seconds,
        on_stderr_line=on_stderr,
        **_auth_options(auth),
    )
    _report(progress, name, "packing refs")
    await run_git(git_dir, ["pack-refs", "--all", "--prune"], time_limit=repos.git_timeout_seconds)
    targets = read_ref_files(git_dir)[0]
    head_sha = targets.get(f"refs/heads/{default_branch}") if default_branch else None
    if head_sha is not None:
        _report(progress, name, "checking out for search")
        await update_worktree(
            git_dir, worktree_root(settings.data_dir, name), head_sha, time_limit=repos.fetch_timeout_seconds
        )
    _write_marker(git_dir)
    return default_branch, head_sha


async def _is_repository(git_dir: Path) -> bool:
    """Whether git still takes `git_dir` for a bare repository (HEAD, objects/ and refs/ in place). Discovery
    stops at its parent, so a data directory inside someone's checkout is not mistaken for it."""
    try:
        result = await run_git(
            None,
            ["rev-parse", "--is-bare-repository"],
            time_limit=30,
            cwd=git_dir,
            env={"GIT_CEILING_DIRECTORIES": str(git_dir.parent)},
        )
    except Unavailable:
        return False
    return result.stdout.strip() == b"true"


def _move_into_place(staging: Path, final: Path) -> None:
    if os.path.lexists(final):  # left by a registry entry that was removed by hand; the caller holds the lock
        shutil.rmtree(final)
    staging.rename(final)


async def _create_mirror(
    settings: Settings,
    name: str,
    url: str,
    final: Path,
    progress: ProgressCallback | None,
    auth: GitAuth | None = None,
) -> tuple[str | None, str | None]:
    """Build a complete mirror under a temporary name, then rename it to `final`."""
    ensure_private_dir(final.parent)
    staging = final.with_name(f".{final.name}.tmp-{secrets.token_hex(4)}")
    try:
        _report(progress, name, "creating mirror")
        await _configure(settings, staging, url)
        outcome = await _refresh(settings, name, staging, progress, auth)
        _move_into_place(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return outcome


async def add_repository(
    settings: Settings,
    url: str,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    *,
    auth: GitRemoteAuth | None = None,
) -> RepoInfo:
    """Register a repository and create its mirror (first sync included). Nothing is registered if that fails.
    GitHub remotes authenticate through `auth` (default: built from `settings.github`)."""
    clean_url = validate_remote_url(url)
    remote_auth = _remote_auth(settings, auth)
    repo_name = validate_repo_name(name) if name else name_from_url(clean_url)
    registry = Registry(settings.data_dir)
    final = mirror_path(settings.data_dir, repo_name)
    async with _sync_lock(final, settings.repos.fetch_timeout_seconds):
        existing = registry.find(repo_name)
        if existing is not None:
            raise InvalidInput(f"repository {existing.name!r} is already registered (url {existing.url})")
        try:
            default_branch, head_sha = await remote_auth.run(
                clean_url, lambda git_auth: _create_mirror(settings, repo_name, clean_url, final, progress, git_auth)
            )
        except Unavailable as exc:
            raise Unavailable(f"cannot mirror {repo_name} from {clean_url}: {exc.message}") from exc
        record = replace(
            new_record(repo_name, clean_url, default_branch), last_sync_at=datetime.now(UTC), head_sha=head_sha
        )
        await asyncio.to_thread(registry.add, record)
    _report(progress, repo_name, "done", 100.0)
    return record.to_info()


async def sync_repository(
    settings: Settings, name: str, progress: ProgressCallback | None = None, *, auth: GitRemoteAuth | None = None
) -> RepoInfo:
    """Fetch one registered repository. On failure the previous mirror stays usable, the error is recorded in
    the registry (`last_sync_error`) and raised as Unavailable."""
    registry = Registry(settings.data_dir)
    record = registry.get(name)
    git_dir = mirror_path(settings.data_dir, record.name)
    remote_auth = _remote_auth(settings, auth)

    async def attempt(git_auth: GitAuth | None) -> tuple[str | None, str | None]:
        if git_dir.is_dir() and await _is_repository(git_dir):
            return await _refresh(settings, record.name, git_dir, progress, git_auth)
        # never synced successfully, removed by hand, or damaged (its HEAD or objects gone): build it again
        return await _create_mirror(settings, record.name, record.url, git_dir, progress, git_auth)

    try:
        async with _sync_lock(git_dir, settings.repos.fetch_timeout_seconds):
            default_branch, head_sha = await remote_auth.run(record.url, attempt)
    except (BastionError, OSError) as exc:
        message = exc.message if isinstance(exc, BastionError) else f"{type(exc).__name__}: {exc}"
        await asyncio.to_thread(registry.update, record.name, last_sync_error=message)
        raise Unavailable(f"sync of {record.name} failed: {message}") from exc
    updated = await asyncio.to_thread(
        registry.update,
        record.name,
        last_sync_at=datetime.now(UTC),
        last_sync_error=None,
        head_sha=head_sha,
        default_branch=default_branch,
    )
    _report(progress, record.name, "done", 100.0)
    return updated.to_info()


async def sync_all(
    settings: Settings, progress: ProgressCallback | None = None, *, auth: GitRemoteAuth | None = None
) -> list[tuple[str, RepoInfo | BastionError]]:
    """Sync every registered repository, one after another; a failure is reported, not raised."""
    outcomes: list[tuple[str, RepoInfo | BastionError]] = []
    remote_auth = _remote_auth(settings, auth)
    for record in Registry(settings.data_dir).records():
        try:
            outcomes.append((record.name, await sync_repository(settings, record.name, progress, auth=remote_auth)))
        except BastionError as exc:
            outcomes.append((record.name, exc))
    return outcomes


async def run_scheduled_sync(
    settings: Settings, *, stop: asyncio.Event | None = None, auth: GitRemoteAuth | None = None
) -> None:
    """Sync every mirror each `repos.sync_interval_seconds` until `stop` is set (or the task is cancelled).
    Returns at once when the interval is 0 (schedule disabled). Run it as a task beside the server."""
    interval = settings.repos.sync_interval_seconds
    if interval <= 0:
        return
    stop = stop or asyncio.Event()
    while not stop.is_set():
        for name, outcome in await sync_all(settings, auth=auth):
            if isinstance(outcome, BastionError):
                log.warning("scheduled sync of %s failed: %s", name, outcome.message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
