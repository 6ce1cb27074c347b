"""The audit pipeline: `record()` on the request path, the spool in between, one delivery thread per sink.

    request --record()--> Spool (seal + write, durable) --> worker per sink --> SQLite / JSONL / PG / CW

`record()` seals the event into the hash chain and writes it to the spool's log; it returns an awaitable that is
already complete when the write made the event durable as configured (`fsync_ms > 0`), or completes after the
fsync that covers it (`fsync_ms = 0`). The request path awaits it before the response leaves (docs/audit.md: the
guarantee and its cost). No request ever waits for a sink.

Each sink has its own worker thread and its own cursor in the spool. The worker delivers in large batches: at most
every `delivery_interval` seconds, or at once when a full batch (`batch_size`) is waiting, so a sink's per-batch
cost (a transaction, a request) is shared by many events. It takes only events the spool has fsynced, reads them
from memory while it keeps up (from the log when it has fallen behind), writes them to its sink and advances its
cursor; on failure it retries the same batch with exponential backoff and jitter, so a slow or broken sink only
grows its own backlog, which stays in the spool (across restarts too) and drains in order when the sink recovers.
Sinks skip events they already hold, so the re-delivery that follows a crash or an ambiguous failure stores nothing
twice. A sink that commits without fsync (`SyncableSink`) is synced before its cursor is saved, at most once per
`sync_interval`: the saved cursor never runs ahead of what the sink holds durably.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread

from bastion.audit.event import AuditEvent
from bastion.audit.sink import AuditSink, SealedEvent, SyncableSink
from bastion.audit.spool import DONE, Spool

__all__ = ["AuditLog", "AuditStats", "SinkStats"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SinkStats:
    name: str
    delivered_seq: int  # the spool seq this sink has stored up to
    written: int  # events this sink stored since start
    errors: int  # failed write attempts
    pending: int  # events in the spool this sink has not stored yet
    lag_seconds: float  # age of the oldest event it has not stored (0 when caught up): AuditSinkLagSeconds
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AuditStats:
    recorded: int  # events passed to record() since start
    spooled_seq: int  # the last seq committed to the spool
    spool_pending: int  # sealed, not yet in the spool's log (only while the disk refuses writes)
    spool_errors: int  # failed spool writes and fsyncs
    dropped: int  # events that could not be recorded at all (after close)
    sinks: dict[str, SinkStats]

    @property
    def written(self) -> int:
        """Events stored by every sink since start (the slowest sink's count)."""
        return min((stats.written for stats in self.sinks.values()), default=0)

    @property
    def backlog(self) -> int:
        """The largest number of events any sink still has to store: AuditSpoolEvents."""
        return max((stats.pending for stats in self.sinks.values()), default=0)

    @property
    def sink_errors(self) -> dict[str, int]:
        return {name: stats.errors for name, stats in self.sinks.items()}


DELIVERY_SECONDS = 0.25  # a caught-up sink gets a batch at most this often (or sooner, when a batch is full)
SYNC_SECONDS = 1.0  # a SyncableSink is synced, and its cursor saved, at most this often


def _call(function: Callable[[], None]) -> Exception | None:
    """The exception `function` raised, if any."""
    try:
        function()
    except Exception as exc:
        return exc
    return None


class _Worker:
    """One sink's delivery thread and counters (written only by that thread)."""

    def __init__(self, sink: AuditSink) -> None:
        self.sink = sink
        self.sync = sink.sync if isinstance(sink, SyncableSink) else None
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.delivered = 0  # the last seq the sink has stored (committed)
        self.marked = 0  # the last seq saved as its cursor (durable in the sink)
        self.last_write = 0.0  # monotonic time of the last batch
        self.last_mark = 0.0
        self.sync_failures = 0
        self.written = 0
        self.errors = 0
        self.last_error: str | None = None
        self.oldest_pending: datetime | None = None


class AuditLog:
    """Usage: `log = AuditLog(Spool(dir), [SqliteAuditSink(path)]); log.start(); await log.record(event); ...;
    await log.aclose()`."""

    def __init__(
        self,
        spool: Spool,
        sinks: Sequence[AuditSink],
        *,
        batch_size: int = 500,
        retry_initial_seconds: float = 0.1,
        retry_max_seconds: float = 30.0,
        wait_for_spool: bool = True,
        delivery_interval: float = DELIVERY_SECONDS,
        sync_interval: float = SYNC_SECONDS,
    ) -> None:
        names = [sink.name for sink in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"audit sink names must be unique, got {names}")
        self.spool = spool
        self._workers = [_Worker(sink) for sink in sinks]
        for worker in self._workers:
            worker.delivered = worker.marked = spool.cursor(worker.sink.name)
        self._batch_size = batch_size
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._wait_for_spool = wait_for_spool
        self._delivery_interval = delivery_interval
        self._sync_interval = sync_interval
        self._recorded = 0
        self._started = False
        self._closed = False
        self._flush_to = 0  # deliver up to here without waiting for the next interval
        self._stopping = threading.Event()  # deliver what is in the spool, then exit
        self._abandon = threading.Event()  # exit now; the spool keeps the rest for the next start
        spool.on_durable = self._on_durable

    @property
    def instance_id(self) -> str:
        return self.spool.instance_id

    # -- request path -------------------------------------------------------------------------------------------

    def record(self, event: AuditEvent) -> Awaitable[None]:
        """Seal `event` and write it to the spool. Await the result before answering the request: it is complete
        once the event is durable in the spool (at once, unless `fsync_ms = 0`). Never raises."""
        self._recorded += 1
        try:
            receipt = self.spool.append(event)
        except Exception:
            logger.exception("audit event %s could not be sealed; it is lost", event.event_id)
            return DONE
        return receipt if self._wait_for_spool else DONE

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the spool's fsync thread and one delivery thread per sink (undelivered events from before a
        restart go out first)."""
        if self._started:
            return
        self._started = True
        self.spool.start()
        for worker in self._workers:
            worker.last_write = time.monotonic()
            worker.thread = threading.Thread(
                target=self._run_worker, args=(worker,), name=f"audit-{worker.sink.name}", daemon=True
            )
            worker.thread.start()

    def _on_durable(self, durable_seq: int) -> None:
        """After each fsync (spool thread): wake the workers that have a full batch, or a flush, waiting."""
        for worker in self._workers:
            behind = durable_seq - worker.delivered
            if behind > 0 and (behind >= self._batch_size or self._flush_to > worker.delivered):
                worker.wake.set()

    def _wake_workers(self) -> None:
        for worker in self._workers:
            worker.wake.set()

    def _caught_up(self, target: int) -> bool:
        return self.spool.committed_seq >= target and all(worker.delivered >= target for worker in self._workers)

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - a bool, not a cancel
        """Wait until every event recorded before this call is stored by every sink. False on timeout."""
        target = self.spool.sealed_seq
        if self._caught_up(target):
            return True
        if not self._started:
            raise RuntimeError("AuditLog.flush() before start(): nothing is writing the queued events")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._flush_to = max(self._flush_to, target)
        self.spool.request_sync()  # sinks take fsynced events only: fsync now rather than at the next tick
        self._wake_workers()
        pause = 0.001
        # Polling keeps the writer threads free of event-loop plumbing; flush is for tests and shutdown.
        while not self._caught_up(target):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    async def aclose(self, timeout: float | None = 10.0) -> None:  # noqa: ASYNC109 - bounds the flush only
        """Deliver what the sinks will take within `timeout`, then stop. Whatever a sink has not stored stays in
        the spool and is delivered at the next start."""
        if self._closed:
            return
        self._closed = True
        if self._started and not await self.flush(timeout):
            self._abandon.set()
        self._stopping.set()
        self._wake_workers()
        await anyio.to_thread.run_sync(self._join_and_close)

    def _join_and_close(self) -> None:
        for worker in self._workers:
            if worker.thread is not None:
                worker.thread.join()
        self.spool.close()  # saves the final cursors
        for worker in self._workers:
            left = self.spool.committed_seq - worker.delivered
            if left > 0:
                logger.warning(
                    "audit sink %s: %d events wait in the spool %s; they are delivered at the next start "
                    "(last error: %s)",
                    worker.sink.name,
                    left,
                    self.spool.path,
                    worker.last_error,
                )
            try:
                worker.sink.close()
            except Exception:
                logger.exception("audit sink %s failed to close", worker.sink.name)

    def stats(self) -> AuditStats:
        committed = self.spool.committed_seq
        now = datetime.now(UTC)
        sinks: dict[str, SinkStats] = {}
        for worker in self._workers:
            oldest = worker.oldest_pending
            sinks[worker.sink.name] = SinkStats(
                name=worker.sink.name,
                delivered_seq=worker.delivered,
                written=worker.written,
                errors=worker.errors,
                pending=max(committed - worker.delivered, 0),
                lag_seconds=max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0,
                last_error=worker.last_error,
            )
        return AuditStats(
            recorded=self._recorded,
            spooled_seq=committed,
            spool_pending=self.spool.pending,
            spool_errors=self.spool.write_errors + self.spool.sync_errors,
            dropped=self.spool.dropped,
            sinks=sinks,
        )

    # -- delivery threads ---------------------------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        """Exponential, capped, with jitter (half fixed, half random) so many instances do not retry in step."""
        ceiling = min(self._retry_initial * 2 ** (failures - 1), self._retry_max)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not security

    def _note_failure(
        self, worker: _Worker, batch: Sequence[SealedEvent], failures: int, delay: float, exc: Exception
    ) -> None:
        worker.errors += 1
        worker.last_error = f"{type(exc).__name__}: {exc}"
        if failures & (failures - 1) == 0:  # attempts 1, 2, 4, 8, ...: keeps reminding without flooding the log
            logger.error(
                "audit sink %s failed to store %d events (seq %d-%d, attempt %d), retrying in %.1fs: %s",
                worker.sink.name,
                len(batch),
                batch[0].seq,
                batch[-1].seq,
                failures,
                delay,
                worker.last_error,
                exc_info=exc if failures == 1 else None,  # the traceback once
            )

    def _note_read_failure(self, worker: _Worker, failures: int, delay: float, exc: Exception) -> None:
        worker.errors += 1
        worker.last_error = f"{type(exc).__name__}: {exc}"
        if failures & (failures - 1) == 0:
            logger.error(
                "audit sink %s: reading the spool after seq %d failed (attempt %d), retrying in %.1fs: %s",
                worker.sink.name,
                worker.delivered,
                failures,
                delay,
                worker.last_error,
                exc_info=exc if failures == 1 else None,
            )

    def _read(self, worker: _Worker, reader: Any) -> list[SealedEvent]:
        batch = self.spool.read(reader, worker.delivered, self._batch_size)
        if batch and batch[0].seq != worker.delivered + 1:
            logger.error(
                "audit sink %s: events %d-%d were pruned from the spool before it stored them",
                worker.sink.name,
                worker.delivered + 1,
                batch[0].seq - 1,
            )
        worker.oldest_pending = batch[0].time if batch else None
        return batch

    def _due(self, worker: _Worker) -> float | None:
        """Seconds until this worker should deliver (0: now), or None when nothing fsynced is waiting for it."""
        behind = self.spool.durable_seq - worker.delivered
        if behind <= 0:
            return None
        if behind >= self._batch_size or self._flush_to > worker.delivered or self._stopping.is_set():
            return 0.0
        return max(0.0, worker.last_write + self._delivery_interval - time.monotonic())

    def _mark(self, worker: _Worker, *, force: bool = False) -> None:
        """Save the worker's cursor, after making what its sink committed durable (at most every
        `sync_interval`, unless `force`)."""
        if worker.marked >= worker.delivered:
            return
        now = time.monotonic()
        if not force and now - worker.last_mark < self._sync_interval:
            return
        if worker.sync is not None:
            failure = _call(worker.sync)
            if failure is not None:
                worker.errors += 1
                worker.last_error = f"{type(failure).__name__}: {failure}"
                worker.sync_failures += 1
                if worker.sync_failures & (worker.sync_failures - 1) == 0:  # 1, 2, 4, 8, ...
                    logger.error(
                        "audit sink %s failed to sync (attempt %d): %s; its cursor stays behind",
                        worker.sink.name,
                        worker.sync_failures,
                        failure,
                    )
                worker.last_mark = now
                return
            worker.sync_failures = 0
        worker.marked, worker.last_mark = worker.delivered, now
        self.spool.mark_delivered(worker.sink.name, worker.marked)

    def _run_worker(self, worker: _Worker) -> None:
        reader = self.spool.open_reader()
        try:
            self._deliver(worker, reader)
        finally:
            try:
                self._mark(worker, force=True)
            except Exception:
                logger.exception("audit sink %s: saving its cursor failed", worker.sink.name)

    def _deliver(self, worker: _Worker, reader: Any) -> None:
        batch: list[SealedEvent] = []
        failures = 0
        while not self._abandon.is_set():
            if not batch:
                worker.wake.clear()  # clear before looking, so a wake-up after the look is not lost
                due = self._due(worker)
                if due is None:
                    worker.oldest_pending = None
                    if self._stopping.is_set():
                        return
                    self._mark(worker)
                    worker.wake.wait(self._delivery_interval)
                    continue
                if due > 0:
                    self._mark(worker)
                    worker.wake.wait(due)
                    continue
                try:
                    batch = self._read(worker, reader)
                except Exception as exc:  # an unreadable spool: keep trying, never let the thread die
                    failures += 1
                    delay = self._backoff(failures)
                    self._note_read_failure(worker, failures, delay, exc)
                    self._abandon.wait(delay)
                    continue
                if not batch:
                    worker.wake.wait(self._delivery_interval)
                    continue
            try:
                worker.sink.write(batch)
            except Exception as exc:
                failures += 1
                delay = self._backoff(failures)
                self._note_failure(worker, batch, failures, delay, exc)
                self._abandon.wait(delay)
                continue
            worker.last_write = time.monotonic()
            worker.written += len(batch)
            worker.delivered = batch[-1].seq
            self.spool.release(min(other.delivered for other in self._workers))
            self._mark(worker)
            batch = []
            if failures:
                logger.warning("audit sink %s recovered after %d failed attempts", worker.sink.name, failures)
                failures = 0
