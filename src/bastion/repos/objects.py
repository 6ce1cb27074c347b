"""Parsers for raw git objects read through `git cat-file`: trees (binary format) and commits.

Pure functions over bytes, so the hot read path needs no extra subprocess per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from bastion.repos.types import CommitSummary, EntryType

__all__ = ["RawTreeEntry", "entry_type", "parse_commit", "parse_tree", "subject_of"]

_OID_BYTES = 20  # SHA-1 repositories


@dataclass(frozen=True, slots=True)
class RawTreeEntry:
    name: str
    mode: str  # six digits as git prints them: 100644, 100755, 120000, 040000, 160000
    oid: str

    @property
    def type(self) -> EntryType:
        return entry_type(self.mode)


def entry_type(mode: str) -> EntryType:
    if mode == "040000":
        return "tree"
    if mode == "160000":
        return "commit"
    return "blob"


def parse_tree(data: bytes) -> dict[str, RawTreeEntry]:
    """Entries of a tree object by name. Modes are normalised to six digits (git stores trees as `40000`)."""
    entries: dict[str, RawTreeEntry] = {}
    position = 0
    end = len(data)
    while position < end:
        space = data.index(b" ", position)
        nul = data.index(b"\0", space)
        mode = data[position:space].decode("ascii").rjust(6, "0")
        name = data[space + 1 : nul].decode("utf-8", "replace")
        oid = data[nul + 1 : nul + 1 + _OID_BYTES].hex()
        entries[name] = RawTreeEntry(name, mode, oid)
        position = nul + 1 + _OID_BYTES
    return entries


def subject_of(message: str) -> str:
    """The first paragraph on one line, as git's `%s` shows it."""
    return " ".join(line.strip() for line in message.strip().split("\n\n", 1)[0].splitlines())


def _parse_signature(value: bytes) -> tuple[str, str, datetime]:
    """`Name <email> 1700000000 +0100` -> (name, email, aware datetime)."""
    text = value.decode("utf-8", "replace")
    open_angle = text.rfind("<")
    close_angle = text.rfind(">")
    name = text[:open_angle].strip() if open_angle >= 0 else text.strip()
    email = text[open_angle + 1 : close_angle] if 0 <= open_angle < close_angle else ""
    stamp, _, offset = text[close_angle + 1 :].strip().partition(" ")
    try:
        seconds = int(stamp)
        sign = -1 if offset.startswith("-") else 1
        minutes = int(offset[1:3]) * 60 + int(offset[3:5]) if len(offset) == 5 else 0
        zone = timezone(timedelta(minutes=sign * minutes))
        when = datetime.fromtimestamp(seconds, zone)
    except (ValueError, OverflowError):
        when = datetime.fromtimestamp(0, UTC)
    return name, email, when


def parse_commit(sha: str, data: bytes) -> tuple[str, CommitSummary]:
    """(root tree oid, summary) from a raw commit object."""
    header, _, message_bytes = data.partition(b"\n\n")
    tree = ""
    parents: list[str] = []
    author_sig: tuple[str, str, datetime] | None = None
    committer_sig: tuple[str, str, datetime] | None = None
    for line in header.split(b"\n"):
        if line.startswith(b" "):  # continuation of a multi-line header (gpgsig, mergetag)
            continue
        key, _, value = line.partition(b" ")
        if key == b"tree":
            tree = value.decode("ascii")
        elif key == b"parent":
            parents.append(value.decode("ascii"))
        elif key == b"author":
            author_sig = _parse_signature(value)
        elif key == b"committer":
            committer_sig = _parse_signature(value)
    author_name, author_email, authored_at = author_sig or ("", "", datetime.fromtimestamp(0, UTC))
    committer_name, _, committed_at = committer_sig or ("", "", datetime.fromtimestamp(0, UTC))
    message = message_bytes.decode("utf-8", "replace")
    subject = subject_of(message)
    summary = CommitSummary(
        sha=sha,
        parents=tuple(parents),
        author_name=author_name,
        author_email=author_email,
        authored_at=authored_at,
        committer_name=committer_name,
        committed_at=committed_at,
        subject=subject,
        message=message,
    )
    return tree, summary
