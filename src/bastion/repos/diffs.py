"""Parsing of `git diff-tree -z --raw --numstat [-p]` output into per-file diffs.

One git process gives status (raw), line counts (numstat) and, when asked, the patch. The raw and numstat parts
are NUL-separated and parsed structurally (so any file name is safe); the patch part is split at `diff --git`
lines and paired with the files in order, each checked against the exact header git writes for it (quoted the way
git quotes); a type change is two sections.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.repos.types import DiffStatus, FileDiff

__all__ = ["DIFF_TREE_ARGS", "parse_diff_tree", "quote_git_path"]

# -M: renames; --no-ext-diff/--no-textconv: a repository's .gitattributes can never run a program.
DIFF_TREE_ARGS = (
    "diff-tree",
    "-r",
    "-M",
    "-z",
    "--raw",
    "--numstat",
    "--no-commit-id",
    "--no-ext-diff",
    "--no-textconv",
    "--no-color",
)
_STATUS: dict[bytes, DiffStatus] = {
    b"A": "added",
    b"M": "modified",
    b"D": "deleted",
    b"R": "renamed",
    b"C": "copied",
    b"T": "type_changed",
}
_C_ESCAPES = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}


@dataclass(slots=True)
class _Change:
    status: DiffStatus
    old_path: bytes
    new_path: bytes
    blobs: tuple[str, ...]
    additions: int = 0
    deletions: int = 0
    binary: bool = False


def quote_git_path(path: bytes) -> bytes:
    """A path as git writes it in patch headers with core.quotepath=off: C-quoted only when it contains
    a double quote, a backslash or a control character."""
    if not any(byte < 0x20 or byte in (0x22, 0x5C, 0x7F) for byte in path):
        return path
    out = bytearray(b'"')
    for byte in path:
        if byte in _C_ESCAPES:
            out += b"\\" + _C_ESCAPES[byte].encode()
        elif byte < 0x20 or byte == 0x7F:
            out += f"\\{byte:03o}".encode()
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def _token(data: bytes, position: int) -> tuple[bytes, int]:
    end = data.index(b"\0", position)
    return data[position:end], end + 1


def _parse_raw(data: bytes) -> tuple[list[_Change], int]:
    changes: list[_Change] = []
    position = 0
    while data.startswith(b":", position):
        meta, position = _token(data, position)
        # ":<old mode> <new mode> <old id> <new id> <status>"; an id of zeros: no blob on that side
        _, _, old_id, new_id, status_field = meta.split(b" ", 4)
        blobs = tuple(oid.decode("ascii") for oid in (old_id, new_id) if oid.strip(b"0"))
        letter = status_field[:1]
        first, position = _token(data, position)
        second = first
        if letter in (b"R", b"C"):
            second, position = _token(data, position)
        changes.append(_Change(_STATUS.get(letter, "modified"), first, second, blobs))
    return changes, position


def _parse_numstat(data: bytes, position: int, changes: list[_Change]) -> int:
    for change in changes:
        record, position = _token(data, position)
        added, _, rest = record.partition(b"\t")
        deleted, _, path = rest.partition(b"\t")
        if not path:  # a rename or copy: the two paths follow as their own tokens
            _, position = _token(data, position)
            _, position = _token(data, position)
        if added == b"-" or deleted == b"-":
            change.binary = True
        else:
            change.additions, change.deletions = int(added), int(deleted)
    return position


def _split_patches(patch: bytes, complete: bool) -> list[tuple[bytes, bytes]]:
    """(header line, hunks from the first `@@`) for each section, in git's order."""
    sections: list[tuple[bytes, bytes]] = []
    chunks = (b"\n" + patch).split(b"\ndiff --git ")[1:]
    if not complete and chunks:
        chunks.pop()  # cut off by the output cap: an incomplete patch is worse than none
    for chunk in chunks:
        header, _, body = chunk.partition(b"\n")
        if body.startswith(b"@@ "):
            hunks = body
        else:
            hunk_start = body.find(b"\n@@ ")
            hunks = b"" if hunk_start < 0 else body[hunk_start + 1 :]
        if hunks and not hunks.endswith(b"\n"):
            hunks += b"\n"
        sections.append((b"diff --git " + header, hunks))
    return sections


def _take_sections(
    sections: list[tuple[bytes, bytes]], start: int, header: bytes, change: _Change
) -> tuple[bytes | None, int]:
    """The hunks of `change` from the sections at `start` (git writes them in the order of the file records), and
    where the next change's begin. Matched by position, not by header alone: names containing ` b/` can give two
    files the same header (`a/x b/x b/y` ...), and joining by header would hand one file the other's lines. A
    type change is two sections (the old file deleted, the new one added)."""
    taken = 0
    hunks = b""
    while start + taken < len(sections) and sections[start + taken][0] == header and taken < 2:
        hunks += sections[start + taken][1]
        taken += 1
        if change.status != "type_changed":
            break
    return (hunks if taken else None), start + taken


def parse_diff_tree(data: bytes, *, with_patch: bool, complete: bool = True) -> list[FileDiff]:
    """FileDiffs from `git diff-tree` output made with DIFF_TREE_ARGS (plus `-p` when `with_patch`).
    `complete=False` means the output was cut off: files whose patch was not fully read get `patch=None`."""
    try:
        changes, position = _parse_raw(data)
        position = _parse_numstat(data, position, changes)
    except ValueError:  # cut off inside the raw/numstat part: no reliable per-file data
        return []
    sections: list[tuple[bytes, bytes]] = []
    if with_patch:
        patch = data[position:]
        sections = _split_patches(patch[1:] if patch.startswith(b"\0") else patch, complete)
    files: list[FileDiff] = []
    next_section = 0
    for change in changes:
        patch_text: str | None = None
        if with_patch:
            header = b"diff --git " + quote_git_path(b"a/" + change.old_path) + b" "
            header += quote_git_path(b"b/" + change.new_path)
            hunks, next_section = _take_sections(sections, next_section, header, change)
            if hunks is not None and not change.binary:
                patch_text = hunks.decode("utf-8", "replace")
        renamed = change.status in ("renamed", "copied")
        files.append(
            FileDiff(
                path=change.new_path.decode("utf-8", "replace"),
                status=change.status,
                additions=change.additions,
                deletions=change.deletions,
                old_path=change.old_path.decode("utf-8", "replace") if renamed else None,
                binary=change.binary,
                patch=patch_text,
                blobs=change.blobs,
            )
        )
    return files
