"""The ref table of a mirror, read in pure Python, and ref resolution.

Every sync ends with `git pack-refs --all --prune`, so branches and tags (with peeled `^` lines for annotated
tags) are in `packed-refs`; the default branch is `HEAD`'s symref. A reload happens only when the stat signature
of `packed-refs`, `HEAD` or the sync marker changes. A sync replaces the marker as its very last step, so the
request path stats only the marker (one `stat()` of a precomputed path, ~1 µs): a sync, by this process or
another, is seen by the next request. `packed-refs` and `HEAD` changed by anything else (git commands run by hand
in the mirror) are seen within `FULL_CHECK_INTERVAL`. Loose refs (left by an interrupted sync) are scanned on
reload and peeled through cat-file.

Resolving a branch or tag name is remembered per table (a table never changes; a reload makes a new one), so a
repeated `resolve("main")` is a dictionary lookup.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bastion.errors import AmbiguousRef, InvalidInput, NotFound
from bastion.freshness import PerIteration
from bastion.repos.cache import LRU
from bastion.repos.catfile import AmbiguousObjectName, CatFile
from bastion.repos.names import is_full_sha, looks_like_sha
from bastion.repos.types import RefSnapshot, ResolvedRef

__all__ = ["FULL_CHECK_INTERVAL", "SYNC_MARKER", "RefTable", "RefWatcher", "read_ref_files", "resolve_ref"]

SYNC_MARKER = "bastion-sync"  # written into the mirror after each successful sync
FULL_CHECK_INTERVAL = 0.05  # seconds between stats of packed-refs and HEAD (the marker is checked every time)
_SIGNATURE_FILES = ("packed-refs", "HEAD", SYNC_MARKER)  # the marker last: `current()` compares it alone
_NAMESPACES = (("refs/heads/", "branches"), ("refs/tags/", "tags"))
_StatSignature = tuple[int, int, int] | None
_Signature = tuple[_StatSignature, ...]


@dataclass(frozen=True, slots=True)
class RefTable:
    """Branches and tags (short name -> commit SHA, annotated tags peeled) and the default branch."""

    branches: dict[str, str]
    tags: dict[str, str]
    default_branch: str | None
    # ref as the caller wrote it (None: the default branch) -> its resolution, once the target was confirmed to
    # be a commit. Bounded: only names of this table's refs resolve.
    resolved: dict[str | None, ResolvedRef] = field(default_factory=dict[str | None, ResolvedRef], compare=False)

    def snapshot(self) -> RefSnapshot:
        return RefSnapshot(branches=dict(self.branches), tags=dict(self.tags), default_branch=self.default_branch)


def _read_head(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if head.startswith("ref: refs/heads/"):
        return head.removeprefix("ref: refs/heads/")
    return None


def _read_packed(git_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(ref -> object, ref -> peeled object) from packed-refs."""
    targets: dict[str, str] = {}
    peeled: dict[str, str] = {}
    try:
        text = (git_dir / "packed-refs").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return targets, peeled
    last_ref: str | None = None
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        if line.startswith("^"):
            if last_ref is not None:
                peeled[last_ref] = line[1:].strip()
            continue
        oid, _, ref = line.partition(" ")
        targets[ref] = oid
        last_ref = ref
    return targets, peeled


def _read_loose(git_dir: Path) -> dict[str, str]:
    """Loose `refs/heads/*` and `refs/tags/*` files (normally none after pack-refs)."""
    loose: dict[str, str] = {}
    for prefix, _ in _NAMESPACES:
        top = git_dir / prefix
        for directory, _dirs, files in os.walk(top):
            for file_name in files:
                if file_name.endswith(".lock"):
                    continue
                full = Path(directory, file_name)
                try:
                    content = full.read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError):
                    continue
                if is_full_sha(content):
                    loose[prefix + full.relative_to(top).as_posix()] = content
    return loose


def read_ref_files(git_dir: Path) -> tuple[dict[str, str], dict[str, str], set[str], str | None]:
    """(ref -> target, ref -> peeled, loose refs that still need peeling, default branch)."""
    targets, peeled = _read_packed(git_dir)
    loose = _read_loose(git_dir)
    for ref, oid in loose.items():
        targets[ref] = oid
        peeled.pop(ref, None)
    return targets, peeled, set(loose), _read_head(git_dir)


def _stat_signature(path: str) -> _StatSignature:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class RefWatcher:
    """Holds the current RefTable of one mirror and reloads it when the files change."""

    def __init__(self, git_dir: Path, *, full_check_interval: float = FULL_CHECK_INTERVAL) -> None:
        self.git_dir = git_dir
        self.full_check_interval = full_check_interval
        self._paths = tuple(os.fspath(git_dir / name) for name in _SIGNATURE_FILES)
        self._marker_path = self._paths[-1]
        self._signature: _Signature | None = None
        self._next_full_check = 0.0  # time.monotonic() value
        self._marker: PerIteration[_StatSignature] = PerIteration()
        self.table: RefTable | None = None

    def signature(self) -> _Signature:
        return tuple(_stat_signature(path) for path in self._paths)

    def changed(self) -> _Signature | None:
        """The new signature when the ref files changed since the last load, else None. Stats all three files."""
        self._next_full_check = time.monotonic() + self.full_check_interval
        current = self.signature()
        return None if current == self._signature else current

    def current(self) -> RefTable | None:
        """The loaded table when it is certainly current, else None (then `changed()` decides). The request
        path's check: the marker's stat once per event-loop iteration, the other files' at most every
        `full_check_interval`."""
        table, signature = self.table, self._signature
        if table is None or signature is None:
            return None
        marker = self._marker.get(self._stat_marker)  # once per loop iteration (bastion.freshness)
        if marker != signature[-1] or time.monotonic() >= self._next_full_check:
            return None
        return table

    def _stat_marker(self) -> _StatSignature:
        return _stat_signature(self._marker_path)

    async def load(self, catfile: CatFile, signature: _Signature) -> RefTable:
        targets, peeled, loose, default_branch = read_ref_files(self.git_dir)
        if loose:  # a loose tag may be annotated: ask git to peel it (rare, so one pipelined batch is fine)
            order = sorted(loose)
            answers = await catfile.infos([f"{targets[ref]}^{{}}" for ref in order])
            for ref, answer in zip(order, answers, strict=True):
                if answer is not None:
                    peeled[ref] = answer.oid
        tables: dict[str, dict[str, str]] = {"branches": {}, "tags": {}}
        for ref, oid in targets.items():
            for prefix, kind in _NAMESPACES:
                if ref.startswith(prefix):
                    tables[kind][ref.removeprefix(prefix)] = peeled.get(ref, oid)
        self.table = RefTable(tables["branches"], tables["tags"], default_branch)
        self._signature = signature
        return self.table


async def resolve_ref(
    repo_name: str, table: RefTable, ref: str | None, catfile: CatFile, commits_seen: LRU[str, bool]
) -> ResolvedRef:
    """A validated ref -> commit. Order: None/HEAD (default branch), `refs/heads/x` / `refs/tags/x` exactly,
    a short name as branch then tag, then a hex SHA (prefix) that must name a commit."""
    known = table.resolved.get(ref)
    if known is not None:
        return known
    resolved = _resolve_name(repo_name, table, ref)
    if resolved is not None:
        await _require_commit(repo_name, resolved.sha, ref or "HEAD", catfile, commits_seen)
        table.resolved[ref] = resolved
        return resolved
    assert ref is not None
    if not looks_like_sha(ref):
        raise NotFound(f"ref '{ref}' not found in {repo_name}")
    sha = ref.lower()
    if is_full_sha(sha) and commits_seen.get(sha):
        return ResolvedRef("commit", None, sha)
    try:
        info = await catfile.info(f"{sha}^{{commit}}")
    except AmbiguousObjectName:
        raise AmbiguousRef(f"'{ref}' is ambiguous in {repo_name}: give more digits of the SHA") from None
    if info is None or info.type != "commit":
        raise NotFound(f"ref '{ref}' not found in {repo_name} (no commit has that SHA)")
    commits_seen.put(info.oid, True)
    return ResolvedRef("commit", None, info.oid)


def _resolve_name(repo_name: str, table: RefTable, ref: str | None) -> ResolvedRef | None:
    if ref is None or ref == "HEAD":
        branch = table.default_branch
        if branch is None or branch not in table.branches:
            raise NotFound(f"{repo_name} has no default branch yet (empty repository or not synced)")
        return ResolvedRef("branch", f"refs/heads/{branch}", table.branches[branch])
    if ref.startswith("refs/"):
        for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
            if ref.startswith(prefix):
                names = table.branches if kind == "branch" else table.tags
                sha = names.get(ref.removeprefix(prefix))
                if sha is not None:
                    return ResolvedRef("branch" if kind == "branch" else "tag", ref, sha)
        raise NotFound(f"ref '{ref}' not found in {repo_name}")
    if ref in table.branches:
        return ResolvedRef("branch", f"refs/heads/{ref}", table.branches[ref])
    if ref in table.tags:
        return ResolvedRef("tag", f"refs/tags/{ref}", table.tags[ref])
    return None


async def _require_commit(repo_name: str, sha: str, ref: str, catfile: CatFile, commits_seen: LRU[str, bool]) -> None:
    """A branch or tag may point at a tree or blob (rare); those are not commits to read from."""
    if commits_seen.get(sha):
        return
    info = await catfile.info(sha)
    if info is None:
        raise NotFound(f"ref '{ref}' in {repo_name} points at a missing object {sha}")
    if info.type != "commit":
        raise InvalidInput(f"ref '{ref}' in {repo_name} points at a {info.type}, not a commit")
    commits_seen.put(sha, True)
