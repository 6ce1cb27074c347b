"""Directory listings and file reads at a commit.

A one-level listing comes from the parsed tree (cat-file, cached by tree oid) plus one pipelined `info` batch
for blob sizes; a recursive listing from one `git ls-tree -r -t -l -z` per tree oid. Both are cached by
(tree oid, recursive), so a listing of the same directory at a later commit that did not touch it is free.
"""

from __future__ import annotations

from bastion.errors import InvalidInput, Unavailable
from bastion.repos.gitcmd import parse_output, run_git
from bastion.repos.handle import MirrorHandle
from bastion.repos.objects import entry_type
from bastion.repos.types import Blob, TreeEntry

__all__ = ["MAX_LS_TREE_OUTPUT", "list_tree", "read_path", "tree_entries"]

MAX_LS_TREE_OUTPUT = 256 * 1024 * 1024


async def tree_entries(handle: MirrorHandle, tree_oid: str, recursive: bool) -> tuple[TreeEntry, ...]:
    """Entries of a tree with paths relative to it, sorted by path."""
    key = (tree_oid, recursive)
    cached = handle.listings.get(key)
    if cached is not None:
        return cached
    if recursive:
        entries = await _recursive_entries(handle, tree_oid)
    else:
        entries = _sorted(await _one_level(handle, tree_oid))
    return handle.listings.put(key, entries)


def _sorted(entries: list[TreeEntry]) -> tuple[TreeEntry, ...]:
    return tuple(sorted(entries, key=lambda entry: entry.path))


async def _one_level(handle: MirrorHandle, tree_oid: str) -> list[TreeEntry]:
    raw_entries = (await handle.reader.tree(tree_oid)).values()
    sizes = await handle.reader.blob_sizes([entry.oid for entry in raw_entries if entry.type == "blob"])
    return [
        TreeEntry(entry.name, entry.type, entry.mode, entry.oid, sizes.get(entry.oid) if entry.type == "blob" else None)
        for entry in raw_entries
    ]


async def _recursive_entries(handle: MirrorHandle, tree_oid: str) -> tuple[TreeEntry, ...]:
    result = await run_git(
        handle.git_dir,
        ["ls-tree", "-r", "-t", "-l", "-z", tree_oid],
        time_limit=handle.timeout,
        max_output=MAX_LS_TREE_OUTPUT,
    )
    if result.truncated:
        raise Unavailable(f"the tree of {handle.name} is too large to list recursively; list a subdirectory")
    return await parse_output(_parse_ls_tree, result.stdout)


def _parse_ls_tree(output: bytes) -> tuple[TreeEntry, ...]:
    """`git ls-tree -r -t -l -z` output, sorted by path (pure: may run in a worker thread)."""
    entries: list[TreeEntry] = []
    for record in output.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, _type, oid, size = meta.decode("ascii").split(maxsplit=3)
        mode = mode.rjust(6, "0")
        kind = entry_type(mode)
        entries.append(
            TreeEntry(path.decode("utf-8", "replace"), kind, mode, oid, int(size) if kind == "blob" else None)
        )
    return _sorted(entries)


def _prefixed(entries: tuple[TreeEntry, ...], prefix: str) -> list[TreeEntry]:
    if not prefix:
        return list(entries)
    return [TreeEntry(f"{prefix}/{e.path}", e.type, e.mode, e.oid, e.size) for e in entries]


async def list_tree(handle: MirrorHandle, commit: str, path: str, recursive: bool) -> list[TreeEntry]:
    entry = await handle.reader.lookup(commit, path)
    if entry.type != "tree":
        raise InvalidInput(f"'{path}' is a file, not a directory, at {commit[:12]} in {handle.name}")
    return _prefixed(await tree_entries(handle, entry.oid, recursive), path)


async def read_path(handle: MirrorHandle, commit: str, path: str, max_bytes: int) -> Blob | list[TreeEntry]:
    """A file (first `max_bytes`), a symlink (its target as data, mode 120000), a submodule (mode 160000, the
    pinned commit as oid, no data), or the one-level listing of a directory."""
    if max_bytes < 0:
        raise InvalidInput("max_bytes must be >= 0")
    entry = await handle.reader.lookup(commit, path)
    if entry.type == "tree":
        return _prefixed(await tree_entries(handle, entry.oid, False), path)
    if entry.type == "commit":
        return Blob(path=path, oid=entry.oid, size=0, data=b"", mode=entry.mode)
    size, data = await handle.reader.blob_bytes(entry.oid, max_bytes)
    return Blob(path=path, oid=entry.oid, size=size, data=data, mode=entry.mode)
