"""The checked-out worktree of each mirror's default branch, which ripgrep searches.

Layout: `<data_dir>/worktrees/<owner>/<repo>/<sha>/` plus a `current` symlink naming the live one. A new tree is
written under a temporary name, renamed into place, then `current` is replaced atomically (symlink + rename),
so a search sees the old tree or the new one, never a half-written one. The previous tree is kept (a search
that started on it can finish); older ones are removed. Checkout uses `core.symlinks=false`: a symlink becomes a
plain file holding its target path, so ripgrep can never follow a link out of the tree.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from bastion.repos.gitcmd import run_git
from bastion.repos.names import is_full_sha
from bastion.store.db import ensure_private_dir

__all__ = ["CURRENT_LINK", "current_worktree", "update_worktree"]

CURRENT_LINK = "current"


def current_worktree(root: Path) -> tuple[str, Path] | None:
    """(SHA, directory) of the live worktree, or None when there is none yet."""
    try:
        target = os.readlink(root / CURRENT_LINK)
    except OSError:
        return None
    sha = Path(target).name
    if not is_full_sha(sha):
        return None
    return sha, root / sha


async def _checkout(git_dir: Path, sha: str, destination: Path, time_limit: float) -> None:
    """Write the tree of `sha` into `destination` using a private index file (the bare mirror has none)."""
    index = destination.with_name(destination.name + ".index")
    env = {"GIT_INDEX_FILE": str(index)}
    os.makedirs(destination)  # metadata-only calls on local disk: cheap enough for the sync path
    try:
        await run_git(git_dir, ["read-tree", sha], time_limit=time_limit, env=env)
        await run_git(
            git_dir,
            [f"--work-tree={destination}", "checkout-index", "--all", "--force"],
            time_limit=time_limit,
            env=env,
            config=("core.symlinks=false", "core.autocrlf=false"),
        )
    finally:
        index.unlink(missing_ok=True)


async def update_worktree(git_dir: Path, root: Path, sha: str, *, time_limit: float) -> Path:
    """Make `sha` the live worktree (a no-op when it already is). Callers hold the repository's sync lock."""
    current = current_worktree(root)
    if current is not None and current[0] == sha and current[1].is_dir():
        return current[1]
    ensure_private_dir(root)
    final = root / sha
    if not final.is_dir():
        staging = root / f".{sha}.tmp-{secrets.token_hex(4)}"
        try:
            await _checkout(git_dir, sha, staging, time_limit)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    link = root / f".{CURRENT_LINK}.tmp-{secrets.token_hex(4)}"
    os.symlink(sha, link)
    os.replace(link, root / CURRENT_LINK)
    keep = {sha, CURRENT_LINK} | ({current[0]} if current is not None else set())
    _remove_others(root, keep)
    return final


def _remove_others(root: Path, keep: set[str]) -> None:
    for child in root.iterdir():
        if child.name in keep:
            continue
        if child.is_symlink() or child.is_file():
            child.unlink(missing_ok=True)
        else:
            shutil.rmtree(child, ignore_errors=True)
