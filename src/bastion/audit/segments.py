"""The spool's on-disk format: an append-only log of sealed event lines, in segment files.

One directory per spool slot (`<spool dir>/slot-<n>/`) holds:

    instance                    the slot's instance id (written once, before any segment)
    cursors.json                {"<sink>": <last seq it stored durably>, ...}, replaced by atomic rename
    00000000000000000001.log    segments, each named by the first seq it holds (20 digits: names sort as seqs)

A segment is a sequence of records, one per line:

    <seq> <crc32 of line, 8 hex digits> <line>\\n

where `line` is the sealed event exactly as every sink stores it (canonical JSON with its chain hash appended;
bastion.audit.chain), which never contains a newline. The first record of a segment is its header, seq 0, whose
line is `{"first_seq":N,"format":1,"instance_id":"...","prev_hash":"..."|null}`: the chain position the segment
starts at, so the chain head can be found even when a segment holds no event yet.

A record is valid when it ends with a newline and its CRC matches. Readers stop at the first invalid record of
a segment: a crash mid-write leaves at most one torn record at the end of the newest segment (the writer cuts it
on open: its event was never acknowledged), and after a failed write the writer either cuts the file back or
starts a new segment, so nothing valid ever follows an invalid record.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.audit.sink import SealedEvent

__all__ = [
    "FORMAT",
    "Segment",
    "SegmentReader",
    "TailState",
    "encode_header",
    "encode_record",
    "fsync_path",
    "list_segments",
    "read_cursors",
    "read_tail",
    "records",
    "sealed_from_line",
    "segment_name",
    "write_cursors",
]

FORMAT = 1
CURSORS = "cursors.json"
INSTANCE = "instance"
_SUFFIX = ".log"
_NAME_DIGITS = 20


def segment_name(first_seq: int) -> str:
    return f"{first_seq:0{_NAME_DIGITS}d}{_SUFFIX}"


def encode_record(seq: int, line: bytes) -> bytes:
    """One record: `<seq> <crc> <line>\\n` (the line as UTF-8)."""
    return b"%d %08x %b\n" % (seq, zlib.crc32(line), line)


def encode_header(instance_id: str, first_seq: int, prev_hash: str | None) -> bytes:
    document = {"first_seq": first_seq, "format": FORMAT, "instance_id": instance_id, "prev_hash": prev_hash}
    return encode_record(0, json.dumps(document, sort_keys=True, separators=(",", ":")).encode())


def _decode(raw: bytes) -> tuple[int, bytes] | None:
    """(seq, line) of one raw record (with its newline), or None when it is torn or corrupt."""
    if not raw.endswith(b"\n"):
        return None
    seq_text, _, rest = raw.partition(b" ")
    crc_text, _, line = rest.partition(b" ")
    line = line[:-1]
    try:
        seq, crc = int(seq_text), int(crc_text, 16)
    except ValueError:
        return None
    if len(crc_text) != 8 or zlib.crc32(line) != crc or seq < 0:
        return None
    return seq, line


@dataclass(frozen=True, slots=True)
class Segment:
    first_seq: int
    path: Path


def list_segments(slot_dir: Path) -> list[Segment]:
    """The slot's segment files, oldest first."""
    found: list[Segment] = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(slot_dir):
            name = entry.name
            if name.endswith(_SUFFIX) and len(name) == _NAME_DIGITS + len(_SUFFIX) and name[:_NAME_DIGITS].isdigit():
                found.append(Segment(int(name[:_NAME_DIGITS]), Path(entry.path)))
    found.sort(key=lambda segment: segment.first_seq)
    return found


def records(path: Path, offset: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """(end offset, seq, line) of each valid record from `offset` on, stopping at the first invalid one."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        handle.seek(offset)
        position = offset
        for raw in handle:
            decoded = _decode(raw)
            if decoded is None:
                return
            position += len(raw)
            yield position, decoded[0], decoded[1]


@dataclass(frozen=True, slots=True)
class TailState:
    """What a segment says about the chain: where its valid records end, and the last seq and hash in it."""

    valid_end: int  # bytes of valid records (0: not even a valid header)
    instance_id: str | None
    first_seq: int
    last_seq: int  # first_seq - 1 when the segment holds no event
    last_hash: str | None


def read_tail(path: Path) -> TailState:
    """Scan one segment: its header, its last valid record, and where the valid records end."""
    valid_end, instance_id, first_seq, last_seq, last_hash = 0, None, 0, 0, None
    for end, seq, line in records(path):
        if seq == 0:
            if valid_end != 0:  # a header in the middle: corrupt
                break
            try:
                header = json.loads(line)
                instance_id, first_seq, last_hash = header["instance_id"], int(header["first_seq"]), header["prev_hash"]
            except (ValueError, KeyError, TypeError):
                break
            last_seq = first_seq - 1
        elif valid_end == 0 or seq != last_seq + 1:
            break
        else:
            try:
                last_seq, last_hash = seq, _hash_of(line)
            except (ValueError, KeyError, TypeError):
                break
        valid_end = end
    return TailState(valid_end, instance_id, first_seq, last_seq, last_hash)


def _hash_of(line: bytes) -> str:
    # The hash is the line's last member (bastion.audit.chain): `...,"hash":"<algorithm>:<hex>"}`.
    marker = line.rfind(b',"hash":"')
    if marker < 0 or not line.endswith(b'"}'):
        return str(json.loads(line)["hash"])
    return line[marker + 9 : -2].decode()


def sealed_from_line(instance_id: str, seq: int, line: str) -> SealedEvent:
    """A SealedEvent rebuilt from its stored line (the indexed columns are read back from the JSON)."""
    document: dict[str, Any] = json.loads(line)
    moment = datetime.fromisoformat(document["time"])
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return SealedEvent(
        instance_id=instance_id,
        seq=seq,
        event_id=document["event_id"],
        time=moment,
        subject=document.get("subject"),
        repo=document.get("repo"),
        decision=str(document.get("decision")),
        tool=document.get("tool"),
        outcome=str(document.get("outcome")),
        hash=document["hash"],
        line=line,
    )


class SegmentReader:
    """Reads a slot's events in seq order for one sink worker, remembering where it stopped, so a long backlog is
    read once from front to back rather than searched for every batch."""

    def __init__(self, slot_dir: Path, instance_id: str) -> None:
        self.slot_dir = slot_dir
        self.instance_id = instance_id
        self._segment: Segment | None = None
        self._offset = 0
        self._next_seq = -1  # the seq expected at `_offset`

    def read(self, after_seq: int, upto_seq: int) -> list[SealedEvent]:
        """Events after `after_seq` up to `upto_seq` that are still in the spool (pruned ones are skipped)."""
        found: list[SealedEvent] = []
        if upto_seq <= after_seq:
            return found
        if self._next_seq != after_seq + 1:
            self._seek(after_seq)
        while self._segment is not None:
            for end, seq, line in records(self._segment.path, self._offset):
                if seq == 0 or seq <= after_seq:
                    self._offset = end
                    continue
                found.append(sealed_from_line(self.instance_id, seq, line.decode()))
                self._offset, self._next_seq = end, seq + 1
                if seq >= upto_seq:
                    return found
            following = [s for s in list_segments(self.slot_dir) if s.first_seq > self._segment.first_seq]
            if not following or following[0].first_seq > upto_seq:
                return found
            self._segment, self._offset = following[0], 0
        return found

    def _seek(self, after_seq: int) -> None:
        segments = list_segments(self.slot_dir)
        candidates = [segment for segment in segments if segment.first_seq <= after_seq + 1]
        self._segment = candidates[-1] if candidates else (segments[0] if segments else None)
        self._offset = 0
        self._next_seq = after_seq + 1


def read_cursors(slot_dir: Path) -> dict[str, int]:
    try:
        document: object = json.loads((slot_dir / CURSORS).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(document, dict):
        return {}
    entries: dict[Any, Any] = document  # pyright: ignore[reportUnknownVariableType]
    return {str(name): seq for name, seq in entries.items() if isinstance(seq, int)}


def write_cursors(slot_dir: Path, cursors: dict[str, int], *, durable: bool = False) -> None:
    """Replace the cursors file atomically: a crash leaves the old file or the new one, never a torn one. With
    `durable`, the new file is fsynced before it replaces the old one, and the directory after."""
    temporary = slot_dir / f"{CURSORS}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(cursors, sort_keys=True).encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, slot_dir / CURSORS)
    if durable:
        fsync_path(slot_dir, directory=True)


def fsync_path(path: Path, *, directory: bool = False) -> None:
    """fsync a file (its inode: whichever descriptor asks) or a directory (its entries) by path."""
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
