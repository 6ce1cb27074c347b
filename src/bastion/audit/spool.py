"""The local durable spool: every audit event is sealed into the hash chain and committed here before the
response that caused it leaves, and stays here until every sink has stored it.

One SQLite file per running instance, `<spool dir>/slot-<n>.db`, in WAL mode. A process claims the first free
slot with an exclusive `flock` on `slot-<n>.lock`, so each uvicorn worker has its own spool and chain, and a
restarted server takes its slot back, with its instance id and its undelivered backlog.

Group commit: `append()` seals the event under a lock (that fixes `seq`) and queues it; one writer thread
commits whatever has queued in one transaction and then completes the callers' receipts. Under load a commit
carries hundreds of events, so the per-event cost stays a few microseconds of SQLite work.

Durability (see docs/audit.md for the measurements):
- `fsync_ms=N > 0` (default 100): `synchronous=NORMAL`. A receipt completes when the commit has been written to
  the WAL file (write() returned): the event survives the process being killed (`kill -9`, OOM) at any point
  after that. A background thread fsyncs the WAL every N ms, so a power loss or kernel crash loses at most the
  events acknowledged in the last N ms (plus the fsync's own duration).
- `fsync_ms=0`: `synchronous=FULL`, the WAL is fsynced inside every group commit before receipts complete:
  acknowledged events survive power loss too, at the price of one fsync (about 1-3 ms here) per commit.

If the spool cannot be written (disk full, I/O error) the writer logs an ERROR, completes the waiting receipts
anyway (an audit failure must not stop the service: those events are then only in memory) and keeps retrying
them, in order, with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bastion.audit.chain import Chain
from bastion.audit.event import AuditEvent
from bastion.audit.sink import SealedEvent
from bastion.audit.sqlite import format_time
from bastion.errors import ConfigError
from bastion.store.db import ensure_private_dir, ensure_private_file

__all__ = ["Spool", "SpoolHead", "ThreadReceipt", "read_heads"]

logger = logging.getLogger(__name__)

MAX_SLOTS = 64
MAX_COMMIT_EVENTS = 5_000  # one transaction's worth; more waits for the next commit
MAINTENANCE_SECONDS = 1.0  # prune and checkpoint at most this often
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    time TEXT NOT NULL,
    subject TEXT,
    repo TEXT,
    decision TEXT NOT NULL,
    tool TEXT,
    outcome TEXT NOT NULL,
    hash TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
_INSERT = (
    "INSERT INTO events (seq, event_id, time, subject, repo, decision, tool, outcome, hash, line) "
    "VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_SELECT = "SELECT seq, event_id, time, subject, repo, decision, tool, outcome, hash, line FROM events"


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


Waiter = asyncio.Future[None] | ThreadReceipt | None


def _settle(waiters: Sequence[Waiter]) -> None:
    """Complete receipts from the writer thread: one wake-up per event loop, however many futures it holds."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in waiters:
        if waiter is None:
            continue
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


@dataclass(frozen=True, slots=True)
class SpoolHead:
    """A spool file's chain head and sink cursors, as `verify` reads them."""

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


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    # Checkpoints run on the maintenance thread, never inside a commit that requests are waiting for.
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    return connection


def _row_to_sealed(instance_id: str, row: tuple[Any, ...]) -> SealedEvent:
    seq, event_id, moment, subject, repo, decision, tool, outcome, digest, line = row
    return SealedEvent(
        instance_id=instance_id,
        seq=seq,
        event_id=event_id,
        time=datetime.fromisoformat(moment),
        subject=subject,
        repo=repo,
        decision=decision,
        tool=tool,
        outcome=outcome,
        hash=digest,
        line=line,
    )


class Spool:
    """One instance's spool file, its chain head, and its single writer thread."""

    def __init__(
        self, directory: Path, *, key: bytes | None = None, fsync_ms: int = 100, retain_events: int = 10_000
    ) -> None:
        ensure_private_dir(directory)
        self.directory = directory
        self.slot, self._lock_fd = _claim_slot(directory)
        self.path = directory / f"slot-{self.slot}.db"
        ensure_private_file(self.path)
        self.fsync_ms = fsync_ms
        self.retain_events = retain_events
        self._writer = _connect(self.path, "FULL" if fsync_ms == 0 else "NORMAL")
        instance_id, head_seq, head_hash = self._load_meta()
        self.instance_id = instance_id
        self._chain = Chain(instance_id, head_seq, head_hash, key)
        self.committed_seq = head_seq  # the last seq known to be in the file
        self.commit_errors = 0
        self.commits = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._pending: list[tuple[SealedEvent, Waiter]] = []
        self._cursor_updates: dict[str, int] = {}
        self._wake = threading.Event()
        self._kicks: set[asyncio.AbstractEventLoop] = set()  # loops with a kick scheduled
        self._stopping = False
        self._closed = False
        self._writer_thread: threading.Thread | None = None
        self._maintenance_thread: threading.Thread | None = None
        self._maintenance_stop = threading.Event()
        self.on_commit: Callable[[int], None] = lambda seq: None  # the pipeline wakes its sink workers here
        self._active_sinks: set[str] = set()
        self._last_prune = 0.0

    # -- opening ------------------------------------------------------------------------------------------------

    def _load_meta(self) -> tuple[str, int, str | None]:
        connection = self._writer
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            if "instance_id" not in meta:
                meta["instance_id"] = uuid.uuid4().hex[:16]
                connection.execute("INSERT INTO meta (key, value) VALUES ('instance_id', ?)", (meta["instance_id"],))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return meta["instance_id"], int(meta.get("head_seq", 0)), meta.get("head_hash")

    def cursor(self, sink: str) -> int:
        """The last seq `sink` has stored; a sink new to this spool starts with the oldest event still held."""
        with self._lock:
            self._active_sinks.add(sink)
            if sink in self._cursor_updates:
                return self._cursor_updates[sink]
        row = self._writer_read("SELECT seq FROM cursors WHERE sink = ?", (sink,))
        if row is not None:
            return int(row[0])
        oldest = self._writer_read("SELECT min(seq) FROM events", ())
        start = int(oldest[0]) - 1 if oldest and oldest[0] is not None else self.committed_seq
        self.mark_delivered(sink, start)
        return start

    def _writer_read(self, sql: str, parameters: tuple[Any, ...]) -> tuple[Any, ...] | None:
        reader = sqlite3.connect(self.path)
        try:
            return reader.execute(sql, parameters).fetchone()
        finally:
            reader.close()

    # -- request path -------------------------------------------------------------------------------------------

    def append(self, event: AuditEvent) -> asyncio.Future[None] | ThreadReceipt:
        """Seal `event` and queue it for the next group commit. The result completes once it is committed."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        waiter: asyncio.Future[None] | ThreadReceipt = loop.create_future() if loop else ThreadReceipt()
        with self._lock:
            if self._closed:
                self.dropped += 1
                dropped = True
            else:
                self._pending.append((self._chain.seal(event), waiter))
                dropped = False
        if dropped:
            logger.error("audit event %s recorded after the audit log closed: not stored", event.event_id)
            waiter.set() if isinstance(waiter, ThreadReceipt) else waiter.set_result(None)
            return waiter
        if loop is None:
            self._kick()
        elif loop not in self._kicks:
            # Hand the writer everything this loop iteration records at once: the kick runs after the callbacks
            # already ready, so concurrent requests share one commit instead of racing the writer one by one.
            self._kicks.add(loop)
            loop.call_soon(self._kick, loop)
        return waiter

    def _kick(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is not None:
            self._kicks.discard(loop)
        if not self._wake.is_set():  # setting a set Event still takes its lock: skip it
            self._wake.set()

    @property
    def sealed_seq(self) -> int:
        """The last seq handed out (committed or not)."""
        return self._chain.seq

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- sink side (called from sink worker threads) ------------------------------------------------------------

    def open_reader(self) -> sqlite3.Connection:
        """A connection for one sink worker thread."""
        connection = sqlite3.connect(self.path, isolation_level=None)
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return connection

    def read(self, reader: sqlite3.Connection, after_seq: int, limit: int) -> list[SealedEvent]:
        rows = reader.execute(f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
        return [_row_to_sealed(self.instance_id, row) for row in rows]

    def mark_delivered(self, sink: str, seq: int) -> None:
        """Record that `sink` stored everything up to `seq`; persisted with the next commit."""
        with self._lock:
            self._cursor_updates[sink] = seq
        self._wake.set()

    # -- the writer ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._writer_thread is not None:
            return
        self._writer_thread = threading.Thread(target=self._run_writer, name="audit-spool", daemon=True)
        self._writer_thread.start()
        self._maintenance_thread = threading.Thread(target=self._run_maintenance, name="audit-spool-sync", daemon=True)
        self._maintenance_thread.start()

    def _take(self, room: int) -> tuple[list[tuple[SealedEvent, Waiter]], dict[str, int]]:
        with self._lock:
            taken = self._pending[:room]
            del self._pending[:room]
            cursors, self._cursor_updates = self._cursor_updates, {}
        return taken, cursors

    def _commit(self, batch: Sequence[tuple[SealedEvent, Waiter]], cursors: dict[str, int]) -> None:
        connection = self._writer
        connection.execute("BEGIN IMMEDIATE")
        try:
            if batch:
                connection.executemany(
                    _INSERT,
                    [
                        (
                            e.seq,
                            e.event_id,
                            format_time(e.time),
                            e.subject,
                            e.repo,
                            e.decision,
                            e.tool,
                            e.outcome,
                            e.hash,
                            e.line,
                        )
                        for e, _ in batch
                    ],
                )
                last = batch[-1][0]
                connection.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("head_seq", str(last.seq)), ("head_hash", last.hash)],
                )
            if cursors:
                connection.executemany("INSERT OR REPLACE INTO cursors (sink, seq) VALUES (?, ?)", cursors.items())
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise

    def _run_writer(self) -> None:
        batch: list[tuple[SealedEvent, Waiter]] = []  # taken but not yet committed (kept across failures)
        cursors: dict[str, int] = {}
        failures = 0
        while True:
            taken, new_cursors = self._take(MAX_COMMIT_EVENTS - len(batch))
            batch += taken
            cursors.update(new_cursors)
            if not batch and not cursors:
                if self._stopping:
                    return
                self._maybe_prune()
                self._wake.wait(MAINTENANCE_SECONDS)
                self._wake.clear()  # cleared before looking again, so an append after the look wakes us
                continue
            try:
                self._commit(batch, cursors)
            except Exception as exc:
                failures += 1
                self._commit_failed(batch, failures, exc)
                time.sleep(min(0.05 * 2 ** (failures - 1), 5.0))
                continue
            if failures:
                logger.warning("audit spool %s writable again after %d failed commits", self.path, failures)
                failures = 0
            self.commits += 1
            if batch:
                self.committed_seq = batch[-1][0].seq
                _settle([waiter for _, waiter in batch])
                self.on_commit(self.committed_seq)
            batch, cursors = [], {}

    def _commit_failed(self, batch: list[tuple[SealedEvent, Waiter]], failures: int, exc: Exception) -> None:
        self.commit_errors += 1
        if failures & (failures - 1) == 0:  # attempts 1, 2, 4, 8, ...
            logger.error(
                "audit spool %s: commit of %d events failed (attempt %d): %s; requests continue, these events are "
                "held in memory until the spool is writable",
                self.path,
                len(batch),
                failures,
                exc,
                exc_info=exc if failures == 1 else None,
            )
        # An audit failure must not stop the service: release the requests; the events stay in `batch`.
        _settle([waiter for _, waiter in batch])
        for index, (event, _) in enumerate(batch):
            batch[index] = (event, None)

    def _maybe_prune(self) -> None:
        """Drop events every active sink has stored, keeping the newest `retain_events` of them."""
        now = time.monotonic()
        if now - self._last_prune < MAINTENANCE_SECONDS:
            return
        self._last_prune = now
        with self._lock:
            active = set(self._active_sinks)
        if not active:
            return
        try:
            placeholders = ",".join("?" * len(active))
            row = self._writer.execute(
                f"SELECT min(seq), count(*) FROM cursors WHERE sink IN ({placeholders})",  # noqa: S608
                tuple(active),
            ).fetchone()
            if row is None or row[0] is None or row[1] < len(active):
                return
            horizon = int(row[0]) - self.retain_events
            if horizon > 0:
                self._writer.execute("DELETE FROM events WHERE seq <= ?", (horizon,))
        except sqlite3.Error as exc:
            logger.warning("audit spool %s: pruning failed: %s", self.path, exc)

    # -- background fsync and checkpoints -----------------------------------------------------------------------

    def _run_maintenance(self) -> None:
        connection = _connect(self.path, "NORMAL")
        wal_path = Path(f"{self.path}-wal")
        interval = self.fsync_ms / 1000 if self.fsync_ms > 0 else MAINTENANCE_SECONDS
        last_checkpoint = time.monotonic()
        try:
            while not self._maintenance_stop.wait(interval):
                if self.fsync_ms > 0:
                    _fsync(wal_path)
                if time.monotonic() - last_checkpoint >= MAINTENANCE_SECONDS:
                    last_checkpoint = time.monotonic()
                    try:
                        # PASSIVE never waits for the writer; it fsyncs the WAL before copying it back.
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    except sqlite3.Error as exc:
                        logger.warning("audit spool %s: checkpoint failed: %s", self.path, exc)
            if self.fsync_ms > 0:
                _fsync(wal_path)
        finally:
            connection.close()

    # -- shutdown -----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, stop the threads, release the slot."""
        with self._lock:
            self._closed = True
            self._stopping = True
        self._wake.set()
        if self._writer_thread is not None:
            self._writer_thread.join()
        else:  # never started: commit what was appended so it is not lost
            taken, cursors = self._take(len(self._pending))
            if taken or cursors:
                self._commit(taken, cursors)
                _settle([waiter for _, waiter in taken])
        self._maintenance_stop.set()
        if self._maintenance_thread is not None:
            self._maintenance_thread.join()
        with contextlib.suppress(sqlite3.Error):
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._writer.close()
        os.close(self._lock_fd)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)  # fsync flushes the file (inode), whichever descriptor asks
    finally:
        os.close(fd)


def read_heads(directory: Path) -> list[SpoolHead]:
    """Chain heads and cursors of every spool file in `directory` (read-only; for `bastion audit verify`)."""
    heads: list[SpoolHead] = []
    for path in sorted(directory.glob("slot-*.db")):
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            cursors = {sink: int(seq) for sink, seq in connection.execute("SELECT sink, seq FROM cursors")}
        except sqlite3.Error:
            continue
        finally:
            connection.close()
        if "instance_id" in meta:
            heads.append(
                SpoolHead(path, meta["instance_id"], int(meta.get("head_seq", 0)), meta.get("head_hash"), cursors)
            )
    return heads
