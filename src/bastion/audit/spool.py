"""The local durable spool: every audit event is sealed into the hash chain and written here before the response
that caused it leaves, and stays here until every sink has stored it.

An append-only log per running instance (format: bastion.audit.segments), in `<spool dir>/slot-<n>/`. A process
claims the first free slot with an exclusive `flock` on `slot-<n>.lock`, so each uvicorn worker has its own spool
and chain, and a restarted server takes its slot back, with its instance id and its undelivered backlog.

The request path (`append`, on the event loop thread): seal the event (one canonical serialisation, one SHA-256),
then one `os.write()` of the record to the open segment. When `write()` returns, the bytes are in the operating
system's page cache: the event survives the process being killed (`kill -9`, OOM) at any point after that. No
thread hand-off, no transaction, no future: about 15 µs of CPU per event, most of it the JSON.

Durability against power loss (see docs/audit.md):
- `fsync_ms=N > 0` (default 100): a background thread fsyncs the log every N ms, so a power loss or kernel crash
  loses at most the events acknowledged in the last N ms (plus the fsync's own duration). `append` returns an
  already-completed receipt.
- `fsync_ms=0`: `append` returns a receipt that completes after an fsync covering its record; the thread fsyncs
  whatever has been written since its last fsync in one go (group commit: one fsync for all requests waiting).

Sinks only ever see events that are fsynced (`durable_seq`), so a sink never holds an event the spool could lose.

If the spool cannot be written (disk full, I/O error) the writer logs an ERROR, releases the request anyway (an
audit failure must not stop the service: those events are then only in memory) and retries them, in order, with
backoff, before any later event.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.audit import segments
from bastion.audit.chain import Chain, SealedRecord, sealed_from_record, sealed_record
from bastion.audit.event import AuditEvent
from bastion.audit.legacy import legacy_heads, migrate_legacy_slot
from bastion.audit.sink import SealedEvent
from bastion.errors import ConfigError
from bastion.store.db import ensure_private_dir

__all__ = ["DONE", "Spool", "SpoolHead", "ThreadReceipt", "read_heads"]

logger = logging.getLogger(__name__)

MAX_SLOTS = 64
SEGMENT_BYTES = 8 << 20  # a new segment after this many bytes; delivered segments are deleted whole
MAINTENANCE_SECONDS = 1.0  # persist cursors, prune, retry failed writes at most this often
RECENT_EVENTS = 8192  # sealed events kept in memory for the sinks, so a sink keeping up never reads the disk


class ThreadReceipt:
    """What `append()` returns to a caller outside an event loop (tests, benchmarks): `wait()` blocks."""

    __slots__ = ("_done",)

    def __init__(self) -> None:
        self._done = threading.Event()

    def set(self) -> None:
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def __await__(self) -> Generator[Any, None, None]:
        while not self._done.is_set():
            yield from asyncio.sleep(0.001).__await__()


class _Done(ThreadReceipt):
    """The receipt of an event that is already as durable as configured: awaiting it does not suspend."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def __await__(self) -> Generator[Any, None, None]:
        return  # a generator that is finished at once: the awaiting task never suspends
        yield


DONE = _Done()  # one shared instance: no allocation per event

Receipt = asyncio.Future[None] | ThreadReceipt


@dataclass(frozen=True, slots=True)
class SpoolHead:
    """A spool slot's chain head and sink cursors, as `verify` reads them."""

    path: Path
    instance_id: str
    seq: int
    hash: str | None
    cursors: dict[str, int]


def _claim_slot(directory: Path) -> tuple[int, int]:
    for slot in range(MAX_SLOTS):
        lock_path = directory / f"slot-{slot}.lock"
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise ConfigError(f"all {MAX_SLOTS} audit spool slots in {directory} are in use by running servers")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _load_instance(slot_dir: Path) -> str:
    """The slot's instance id; a slot without one is new (or its creation was cut short): start it clean."""
    path = slot_dir / segments.INSTANCE
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    for stale in segments.list_segments(slot_dir):  # a half-made slot: nothing in it was ever acknowledged
        stale.path.unlink()
    instance_id = uuid.uuid4().hex[:16]
    temporary = slot_dir / f"{segments.INSTANCE}.tmp"
    temporary.write_text(instance_id + "\n")
    segments.fsync_path(temporary)
    os.replace(temporary, path)
    segments.fsync_path(slot_dir, directory=True)
    return instance_id


@dataclass(slots=True)
class _Unwritten:
    seq: int
    prev_hash: str | None
    record: bytes


class Spool:
    """One instance's spool: its chain head, its open segment, and its background fsync/maintenance thread."""

    def __init__(
        self,
        directory: Path,
        *,
        key: bytes | None = None,
        fsync_ms: int = 100,
        retain_events: int = 10_000,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        ensure_private_dir(directory)
        self.directory = directory
        self.slot, self._lock_fd = _claim_slot(directory)
        self.path = directory / f"slot-{self.slot}"
        self._fd: int | None = None  # the newest segment, open for appending
        self._segment_size = 0
        try:
            ensure_private_dir(self.path)
            migrate_legacy_slot(directory / f"slot-{self.slot}.db", self.path)
            self.instance_id = _load_instance(self.path)
            head_seq, head_hash = self._recover()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.fsync_ms = fsync_ms
        self.retain_events = retain_events
        self.segment_bytes = segment_bytes
        self._chain = Chain(self.instance_id, head_seq, head_hash, key)
        self._lock = threading.Lock()  # the chain, the open segment, the recent events, the waiters
        self._written_seq = head_seq  # the last seq whose record write() returned
        self.durable_seq = head_seq  # the last seq fsynced (recovered records were fsynced in _recover)
        self.write_errors = 0
        self.sync_errors = 0
        self.syncs = 0
        self.dropped = 0
        self._unwritten: list[_Unwritten] = []  # sealed, not in the file (the disk failed): retried in order
        self._write_failures = 0
        self._next_retry = 0.0
        self._recent: list[SealedRecord] = []  # seqs consecutive
        self._retired: list[int] = []  # descriptors of finished segments: fsynced and closed by the thread
        self._new_segment = False  # a segment was created since the last fsync: fsync the directory too
        self._waiters: list[asyncio.Future[None] | ThreadReceipt] = []  # fsync_ms=0: waiting for the next fsync
        self._sync_requested = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._cursors = segments.read_cursors(self.path)
        self._cursors_dirty = False
        self._active_sinks: set[str] = set()
        self.on_durable: Callable[[int], None] = lambda seq: None  # the pipeline wakes its sink workers here

    # -- opening ------------------------------------------------------------------------------------------------

    def _recover(self) -> tuple[int, str | None]:
        """Find the chain head in the newest segment, cut a torn record left by a crash, fsync what a crashed
        predecessor may have left unsynced, and reopen the newest segment for appending."""
        found = segments.list_segments(self.path)
        while found:
            newest = found[-1]
            tail = segments.read_tail(newest.path)
            if tail.valid_end == 0:
                # Not even a valid header: the segment's creation was cut short, nothing in it was acknowledged.
                logger.warning("audit spool %s: removing %s, which holds no valid record", self.path, newest.path.name)
                newest.path.unlink()
                found.pop()
                continue
            if newest.path.stat().st_size > tail.valid_end:
                logger.warning(
                    "audit spool %s: cutting a torn record after seq %d in %s (a crash mid-write; that event was "
                    "never acknowledged)",
                    self.path,
                    tail.last_seq,
                    newest.path.name,
                )
                os.truncate(newest.path, tail.valid_end)
            for segment in found:
                segments.fsync_path(segment.path)
            segments.fsync_path(self.path, directory=True)
            self._fd = os.open(newest.path, os.O_WRONLY | os.O_APPEND)
            self._segment_size = tail.valid_end
            return tail.last_seq, tail.last_hash
        return 0, None

    def cursor(self, sink: str) -> int:
        """The last seq `sink` has stored; a sink new to this spool starts with the oldest event still held."""
        with self._lock:
            self._active_sinks.add(sink)
            if sink in self._cursors:
                return self._cursors[sink]
            found = segments.list_segments(self.path)
            start = found[0].first_seq - 1 if found else self._written_seq
            self._cursors[sink] = start
            self._cursors_dirty = True
            return start

    # -- request path -------------------------------------------------------------------------------------------

    def append(self, event: AuditEvent) -> Receipt:
        """Seal `event` and write it to the log. With `fsync_ms > 0` the event is durable against a crash of the
        process when this returns, and the result is the completed `DONE`; with `fsync_ms = 0` the result
        completes after the fsync that covers it."""
        with self._lock:
            if self._closed:
                self.dropped += 1
            else:
                prev_hash = self._chain.head_hash
                seq, digest, line = self._chain.seal_line(event)
                self._recent.append(sealed_record(seq, event, digest, line))
                if len(self._recent) > RECENT_EVENTS:
                    del self._recent[: RECENT_EVENTS // 4]  # a sink this far behind reads from the disk
                record = segments.encode_record(seq, line.encode())
                if self._unwritten:  # behind the events still waiting for the disk: order is the chain's
                    self._unwritten.append(_Unwritten(seq, prev_hash, record))
                    self._retry_unwritten()
                    return DONE
                try:
                    self._write(seq, prev_hash, record)
                except OSError as exc:
                    self._unwritten.append(_Unwritten(seq, prev_hash, record))
                    self._write_failed(exc)
                    return DONE  # an audit failure must not stop the service
                if self.fsync_ms > 0:
                    return DONE
                return self._wait_for_sync()
        logger.error("audit event %s recorded after the audit log closed: not stored", event.event_id)
        return DONE

    def _wait_for_sync(self) -> Receipt:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        waiter: Receipt = loop.create_future() if loop is not None else ThreadReceipt()
        if not self._waiters:  # the first of a group asks for the fsync
            if loop is not None:
                # After the callbacks already ready in this loop iteration: the requests resumed together by the
                # previous fsync record their next events first, and share the next fsync instead of splitting it.
                loop.call_soon(self._sync_requested.set)
            else:
                self._sync_requested.set()
        self._waiters.append(waiter)
        return waiter

    def _write(self, seq: int, prev_hash: str | None, record: bytes) -> None:
        """Append one record (under the lock), starting a new segment when the current one is full."""
        if self._fd is None or (self._segment_size > 0 and self._segment_size + len(record) > self.segment_bytes):
            self._open_segment(seq)
        data = record
        if self._segment_size == 0:  # header and first record in one write()
            data = segments.encode_header(self.instance_id, seq, prev_hash) + record
        assert self._fd is not None
        try:
            _write_all(self._fd, data)
        except OSError:
            try:  # cut whatever part reached the file, so nothing valid ever follows a torn record
                os.ftruncate(self._fd, self._segment_size)
            except OSError:
                self._retire_segment()  # cannot cut it: the next attempt starts a new segment
            raise
        self._segment_size += len(data)
        self._written_seq = seq

    def _open_segment(self, first_seq: int) -> None:
        # O_TRUNC: a file of this name can only be a failed earlier attempt at the same segment.
        fd = os.open(
            self.path / segments.segment_name(first_seq), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600
        )
        self._retire_segment()
        self._fd, self._segment_size, self._new_segment = fd, 0, True

    def _retire_segment(self) -> None:
        if self._fd is not None:
            self._retired.append(self._fd)
            self._fd = None

    def _write_failed(self, exc: OSError) -> None:
        self.write_errors += 1
        self._write_failures += 1
        failures = self._write_failures
        self._next_retry = time.monotonic() + min(0.05 * 2 ** (failures - 1), 5.0)
        if failures & (failures - 1) == 0:  # attempts 1, 2, 4, 8, ...
            logger.error(
                "audit spool %s: writing %d events failed (attempt %d): %s; requests continue, these events are "
                "held in memory until the spool is writable",
                self.path,
                len(self._unwritten),
                failures,
                exc,
                exc_info=exc if failures == 1 else None,
            )

    def _retry_unwritten(self, *, now: float | None = None) -> None:
        """Write the events the disk refused, in order (under the lock), if the backoff allows."""
        if not self._unwritten or (now if now is not None else time.monotonic()) < self._next_retry:
            return
        while self._unwritten:
            first = self._unwritten[0]
            try:
                self._write(first.seq, first.prev_hash, first.record)
            except OSError as exc:
                self._write_failed(exc)
                return
            self._unwritten.pop(0)
        logger.warning("audit spool %s writable again after %d failed writes", self.path, self._write_failures)
        self._write_failures = 0
        if self.fsync_ms == 0:
            self._sync_requested.set()

    @property
    def sealed_seq(self) -> int:
        """The last seq handed out (written or not)."""
        return self._chain.seq

    @property
    def committed_seq(self) -> int:
        """The last seq in the log file (durable against a crash of the process)."""
        return self._written_seq

    @property
    def pending(self) -> int:
        """Events sealed but not in the file (only while the disk refuses writes)."""
        return len(self._unwritten)

    # -- sink side (called from sink worker threads) ------------------------------------------------------------

    def open_reader(self) -> segments.SegmentReader:
        """A reader for one sink worker thread (for events no longer held in memory)."""
        return segments.SegmentReader(self.path, self.instance_id)

    def read(self, reader: segments.SegmentReader, after_seq: int, limit: int) -> list[SealedEvent]:
        """Up to `limit` fsynced events after `after_seq`, in seq order: from memory when they are still there,
        else from the log."""
        upto = min(self.durable_seq, after_seq + limit)
        if upto <= after_seq:
            return []
        with self._lock:
            recent = self._recent
            if recent and recent[0][0] <= after_seq + 1:
                start = after_seq + 1 - recent[0][0]
                taken = recent[start : start + upto - after_seq]
            else:
                taken = None
        if taken is None:
            return reader.read(after_seq, upto)
        instance_id = self.instance_id
        return [sealed_from_record(instance_id, record) for record in taken]

    def release(self, seq: int) -> None:
        """Every sink has `seq` and everything before it: forget those events in memory (the log keeps them)."""
        with self._lock:
            recent = self._recent
            if recent and recent[0][0] <= seq:
                del recent[: seq - recent[0][0] + 1]

    def mark_delivered(self, sink: str, seq: int) -> None:
        """Record that `sink` has stored everything up to `seq` durably; persisted within a second."""
        with self._lock:
            self._cursors[sink] = seq
            self._cursors_dirty = True

    # -- the background thread: fsync, cursors, pruning, retries -------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="audit-spool-sync", daemon=True)
        self._thread.start()

    def request_sync(self) -> None:
        """fsync soon rather than at the next tick (for `flush`)."""
        self._sync_requested.set()

    def _run(self) -> None:
        interval = self.fsync_ms / 1000 if self.fsync_ms > 0 else MAINTENANCE_SECONDS
        last_maintenance = time.monotonic()
        while True:
            self._sync_requested.wait(interval)
            self._sync_requested.clear()  # before looking: a request after this is seen by the next round
            stopping = self._stop.is_set()
            self._sync()
            now = time.monotonic()
            if stopping or now - last_maintenance >= MAINTENANCE_SECONDS:
                last_maintenance = now
                self._maintain(now)
            if stopping:
                return

    def _sync(self) -> None:
        """fsync everything written so far, then complete the receipts waiting for it."""
        with self._lock:
            target = self._written_seq
            descriptors = [*self._retired, *([self._fd] if self._fd is not None else [])]
            retired, self._retired = self._retired, []
            new_segment, self._new_segment = self._new_segment, False
            waiters, self._waiters = self._waiters, []
        if target > self.durable_seq or retired or new_segment:
            failure = self._fsync(descriptors, directory=new_segment)
            if failure is not None:
                # The data may or may not be on disk; nothing better can be done than to say so and go on.
                self.sync_errors += 1
                logger.error("audit spool %s: fsync failed: %s", self.path, failure)
            self.syncs += 1
            for fd in retired:
                os.close(fd)
            self.durable_seq = max(self.durable_seq, target)
        _settle(waiters)
        self.on_durable(self.durable_seq)

    def _fsync(self, descriptors: list[int], *, directory: bool) -> OSError | None:
        try:
            for fd in descriptors:
                os.fsync(fd)
            if directory:
                segments.fsync_path(self.path, directory=True)
        except OSError as exc:
            return exc
        return None

    def _maintain(self, now: float) -> None:
        with self._lock:
            self._retry_unwritten(now=now)
            cursors = dict(self._cursors)
            dirty, self._cursors_dirty = self._cursors_dirty, False
            active = self._active_sinks & cursors.keys()
        prunable = self._prunable(min(cursors[sink] for sink in active) - self.retain_events) if active else []
        if dirty or prunable:
            try:
                # Not fsynced every second: a cursor lost to a power loss means events delivered again, which the
                # sinks skip. Before segments are deleted on its word it is, or a power loss could leave a cursor
                # pointing into deleted segments.
                segments.write_cursors(self.path, cursors, durable=bool(prunable))
            except OSError as exc:
                with self._lock:
                    self._cursors_dirty = True
                logger.warning("audit spool %s: saving sink cursors failed: %s", self.path, exc)
                return
        for segment in prunable:
            try:
                segment.path.unlink()
            except OSError as exc:
                logger.warning("audit spool %s: pruning %s failed: %s", self.path, segment.path.name, exc)
                return

    def _prunable(self, horizon: int) -> list[segments.Segment]:
        """Segments whose events every active sink has stored, beyond the newest `retain_events`. The newest
        segment stays, and so does any segment whose successor is not fsynced yet (its header is what tells a
        restart where the chain stands)."""
        found = segments.list_segments(self.path)
        durable = self.durable_seq
        prunable: list[segments.Segment] = []
        for segment, following in itertools.pairwise(found):
            if following.first_seq - 1 > horizon or following.first_seq > durable:
                break
            prunable.append(segment)
        return prunable

    # -- shutdown -----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """fsync what is written, save the cursors, stop the thread, release the slot."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread is not None:
            self._stop.set()
            self._sync_requested.set()
            self._thread.join()
        else:  # never started: make what was appended durable, as the thread would have
            self._sync()
            self._maintain(time.monotonic())
        with self._lock:
            descriptors = [*self._retired, *([self._fd] if self._fd is not None else [])]
            self._retired, self._fd = [], None
            if self._unwritten:
                logger.error(
                    "audit spool %s closed with %d events it could not write: they are lost",
                    self.path,
                    len(self._unwritten),
                )
        for fd in descriptors:
            os.close(fd)
        os.close(self._lock_fd)


def _settle(waiters: Sequence[asyncio.Future[None] | ThreadReceipt]) -> None:
    """Complete receipts from the spool's thread: one wake-up per event loop, however many futures it holds."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in waiters:
        if isinstance(waiter, ThreadReceipt):
            waiter.set()
        else:
            by_loop.setdefault(waiter.get_loop(), []).append(waiter)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_complete, futures)


def _complete(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # a cancelled request no longer waits
            future.set_result(None)


def read_heads(directory: Path) -> list[SpoolHead]:
    """Chain heads and cursors of every spool slot in `directory` (read-only; for `bastion audit verify`)."""
    heads: list[SpoolHead] = []
    migrated: set[str] = set()
    for slot_dir in sorted(path for path in directory.glob("slot-*") if path.is_dir()):
        try:
            instance_id = (slot_dir / segments.INSTANCE).read_text().strip()
        except OSError:
            continue
        migrated.add(slot_dir.name)
        seq, digest = 0, None
        for segment in reversed(segments.list_segments(slot_dir)):
            tail = segments.read_tail(segment.path)
            if tail.valid_end:
                seq, digest = tail.last_seq, tail.last_hash
                break
        heads.append(SpoolHead(slot_dir, instance_id, seq, digest, segments.read_cursors(slot_dir)))
    heads += [SpoolHead(*head) for head in legacy_heads(directory) if head[0].stem not in migrated]
    return heads
