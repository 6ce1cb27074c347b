"""Trees at a commit from the git trees API: one recursive call per commit serves every lookup and listing.

`GET /repos/{o}/{r}/git/trees/{commit}?recursive=1` lists every path with mode, type, blob SHA and size (GitHub
caps it at 100,000 entries / 7 MB and then sets `truncated`). The index is immutable, so it is cached by commit SHA
and a later read, listing or analysis of that commit costs no API call. A truncated index is not trusted for
"this path does not exist": lookups then walk one level per directory (`GET .../git/trees/{tree_sha}`, cached by
tree SHA, which later commits share when they did not touch the directory).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from bastion.errors import InvalidInput, NotFound, Unavailable
from bastion.repos.github_backend.parse import tree_entry
from bastion.repos.types import TreeEntry

__all__ = ["ROOT_MODE", "FetchTree", "TreeIndex", "children_of", "listing", "prefixed", "walk"]

ROOT_MODE = "040000"
FetchTree = Callable[[str, bool], Awaitable[tuple[tuple[TreeEntry, ...], bool]]]


@dataclass(frozen=True, slots=True)
class TreeIndex:
    """Every entry of one commit's tree by full path, and the entries sorted by path."""

    commit: str
    root_oid: str
    entries: tuple[TreeEntry, ...]
    truncated: bool
    by_path: dict[str, TreeEntry] = field(default_factory=dict[str, TreeEntry])

    @classmethod
    def build(cls, commit: str, root_oid: str, entries: Iterable[TreeEntry], truncated: bool) -> TreeIndex:
        ordered = tuple(sorted(entries, key=lambda entry: entry.path))
        return cls(commit, root_oid, ordered, truncated, {entry.path: entry for entry in ordered})

    def directory(self, path: str) -> TreeEntry | None:
        if not path:
            return TreeEntry("", "tree", ROOT_MODE, self.root_oid, None)
        return self.by_path.get(path)

    def under(self, path: str, recursive: bool) -> list[TreeEntry]:
        """Entries below directory `path` (one level, or all), with full paths, sorted."""
        prefix = f"{path}/" if path else ""
        found = [entry for entry in self.entries if entry.path.startswith(prefix)]
        if recursive:
            return found
        return [entry for entry in found if "/" not in entry.path[len(prefix) :]]

    @property
    def approximate_bytes(self) -> int:
        return 200 * len(self.entries)


def prefixed(entries: Iterable[TreeEntry], prefix: str) -> list[TreeEntry]:
    if not prefix:
        return list(entries)
    return [TreeEntry(f"{prefix}/{e.path}", e.type, e.mode, e.oid, e.size) for e in entries]


def children_of(data: object, prefix: str = "") -> tuple[tuple[TreeEntry, ...], bool]:
    """(entries, truncated) of a trees API answer."""
    if not isinstance(data, dict) or not isinstance(data.get("tree"), list):
        raise Unavailable("GitHub's tree answer has no 'tree' list; the API may have changed")
    entries = tuple(sorted((tree_entry(item, prefix) for item in data["tree"]), key=lambda entry: entry.path))
    return entries, bool(data.get("truncated"))


async def walk(index: TreeIndex, path: str, fetch: FetchTree, repo: str) -> TreeEntry:
    """The entry at `path`, from the index when it is complete, else one directory level at a time."""
    if not path:
        return TreeEntry("", "tree", ROOT_MODE, index.root_oid, None)
    found = index.by_path.get(path)
    if found is not None:
        return found
    if not index.truncated:
        segments = path.split("/")
        for depth in range(1, len(segments)):
            ancestor = index.by_path.get("/".join(segments[:depth]))
            if ancestor is None:
                break
            if ancestor.type != "tree":
                raise NotFound(
                    f"path '{path}' not found at {index.commit[:12]} in {repo}: '{ancestor.path}' is not a directory"
                )
        raise NotFound(f"path '{path}' not found at {index.commit[:12]} in {repo}")
    current = TreeEntry("", "tree", ROOT_MODE, index.root_oid, None)
    walked: list[str] = []
    for name in path.split("/"):
        if current.type != "tree":
            raise NotFound(
                f"path '{path}' not found at {index.commit[:12]} in {repo}: '{'/'.join(walked)}' is not a directory"
            )
        level, _ = await fetch(current.oid, False)
        match = next((entry for entry in level if entry.path == name), None)
        if match is None:
            raise NotFound(f"path '{path}' not found at {index.commit[:12]} in {repo}")
        walked.append(name)
        current = TreeEntry("/".join(walked), match.type, match.mode, match.oid, match.size)
    return current


async def listing(index: TreeIndex, path: str, recursive: bool, fetch: FetchTree, repo: str) -> list[TreeEntry]:
    """Entries under directory `path` ("" for the root), sorted by path; InvalidInput when it is a file."""
    directory = await walk(index, path, fetch, repo)
    if directory.type != "tree":
        raise InvalidInput(f"'{path}' is a file, not a directory, at {index.commit[:12]} in {repo}")
    if not index.truncated:
        return index.under(path, recursive)
    entries, truncated = await fetch(directory.oid, recursive)
    if truncated:
        raise Unavailable(f"the tree of {repo} is too large to list recursively; list a subdirectory")
    return prefixed(entries, path)
