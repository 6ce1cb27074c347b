"""The JSON lines sink: each sealed event as one line, appended to `<path>`, rotated to `<path>.000001`, ...

Rotation renames the active file once it would grow past `max_bytes`; rotated files are numbered upwards (the
oldest has the smallest number) and never renamed again, so a shipper tailing them (Fluent Bit, the CloudWatch
agent, Vector) sees each line once. `keep` bounds how many rotated files stay (0: all).

Idempotent delivery: for each instance the sink knows the last seq it appended (found once by reading the files
backwards from the end), and skips events at or below it, so the batch re-delivered after a crash is not
written twice. A line cut short by a crash mid-write is truncated away on open. Several processes (uvicorn
workers) may share one file: an exclusive `flock` on `<path>.lock` serialises appends and rotation.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from bastion.audit.event import AuditEvent
from bastion.audit.sink import AuditQuery, SealedEvent, StoredLine
from bastion.store.db import ensure_private_dir

__all__ = ["JsonlAuditSink"]

CHUNK = 1 << 20
TAIL_SCAN_LIMIT = 64 << 20  # how far back to look for an instance's last line before assuming it has none
_ROTATED = re.compile(r"\.(\d{6,})$")


class JsonlAuditSink:
    """Implements `QueryableSink` (queries scan the files)."""

    follows = True

    def __init__(
        self, path: Path, *, max_bytes: int = 100 << 20, keep: int = 0, fsync: bool = True, name: str = "jsonl"
    ) -> None:
        self.name = name
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.fsync = fsync
        ensure_private_dir(path.parent)
        self._lock_path = path.with_name(path.name + ".lock")
        self._last_seq: dict[str, int] = {}

    # -- files --------------------------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """Rotated files oldest first, then the active file (if it exists)."""
        rotated = sorted(
            (int(match.group(1)), candidate)
            for candidate in self.path.parent.glob(self.path.name + ".*")
            if (match := _ROTATED.search(candidate.name)) and candidate.name == f"{self.path.name}.{match.group(1)}"
        )
        found = [candidate for _, candidate in rotated]
        if self.path.exists():
            found.append(self.path)
        return found

    @contextlib.contextmanager
    def _locked(self) -> Generator[None]:
        fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _repair_tail(self) -> None:
        """Cut a partial last line (a crash mid-append): its event is re-delivered from the spool."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with self.path.open("rb+") as handle:
            position = size
            while position > 0:
                start = max(0, position - CHUNK)
                handle.seek(start)
                chunk = handle.read(position - start)
                if position == size and chunk.endswith(b"\n"):
                    return
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    handle.truncate(start + newline + 1)
                    return
                position = start
            handle.truncate(0)

    def _find_last_seq(self, instance_id: str) -> int:
        marker = f'"instance_id":{json.dumps(instance_id)}'.encode()
        scanned = 0
        for path in reversed(self.files()):
            for line in _lines_backwards(path):
                scanned += len(line) + 1
                if marker in line:
                    with contextlib.suppress(ValueError, TypeError):
                        return int(json.loads(line)["seq"])
                if scanned > TAIL_SCAN_LIMIT:
                    return 0
        return 0

    def _rotate(self) -> None:
        numbers = [int(match.group(1)) for p in self.files()[:-1] if (match := _ROTATED.search(p.name))]
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{max(numbers, default=0) + 1:06d}"))
        if self.keep:
            rotated = self.files()  # the active file is gone until the next append creates it
            for old in rotated[: -self.keep]:
                old.unlink(missing_ok=True)

    # -- writing ------------------------------------------------------------------------------------------------

    def write(self, events: Sequence[SealedEvent]) -> None:
        with self._locked():
            self._repair_tail()
            fresh: list[str] = []
            for event in events:
                last = self._last_seq.get(event.instance_id)
                if last is None:
                    last = self._last_seq[event.instance_id] = self._find_last_seq(event.instance_id)
                if event.seq > last:
                    fresh.append(event.line)
                    self._last_seq[event.instance_id] = event.seq
            if not fresh:
                return
            data = ("\n".join(fresh) + "\n").encode("utf-8")
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            try:
                self._append(data)
            except BaseException:
                self._last_seq.clear()  # unknown how much reached the file: look again next time
                raise

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading ------------------------------------------------------------------------------------------------

    def scan(self, since: datetime | None = None) -> Iterator[StoredLine]:
        position = 0
        for path in self.files():
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                for raw in handle:
                    if not raw.endswith("\n"):
                        break  # a line still being written
                    position += 1
                    line = raw[:-1]
                    if since is not None and not _at_or_after(line, since):
                        continue
                    yield StoredLine(position, line)

    def query(self, query: AuditQuery) -> list[tuple[int, AuditEvent]]:
        """Scans every file: fine for the sizes rotation keeps, not an index."""
        newest: deque[tuple[int, AuditEvent]] = deque(maxlen=max(query.limit, 0) or None)
        found: list[tuple[int, AuditEvent]] = []
        for stored in self.scan(query.since):
            if query.after_id is not None and stored.position <= query.after_id:
                continue
            try:
                event = AuditEvent.model_validate_json(stored.line)
            except ValueError:
                continue
            if not _matches(event, query):
                continue
            if query.after_id is not None:
                found.append((stored.position, event))
                if len(found) >= query.limit:
                    break
            else:
                newest.append((stored.position, event))
        if query.limit <= 0:
            return []
        return found if query.after_id is not None else list(newest)

    def close(self) -> None:
        return None


def _matches(event: AuditEvent, query: AuditQuery) -> bool:
    return (
        (query.subject is None or event.subject == query.subject)
        and (query.repo is None or event.repo == query.repo)
        and (query.decision is None or event.decision == query.decision)
        and (query.tool is None or event.tool == query.tool)
    )


def _at_or_after(line: str, since: datetime) -> bool:
    try:
        moment = datetime.fromisoformat(json.loads(line)["time"])
    except (ValueError, KeyError, TypeError):
        return True  # unreadable lines are not filtered away: verify and export must see them
    return moment >= since


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """Complete lines of `path`, last first."""
    with path.open("rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        rest = b""
        while position > 0:
            start = max(0, position - CHUNK)
            handle.seek(start)
            chunk = handle.read(position - start) + rest
            position = start
            lines = chunk.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line:
                    yield line
        if rest:
            yield rest
