"""The audit pipeline: `record()` on the request path, the spool in between, one delivery thread per sink.

    request --record()--> Spool (seal + group commit, durable) --> worker per sink --> SQLite / JSONL / PG / CW

`record()` seals the event into the hash chain and queues it for the spool's next group commit; it returns an
awaitable that completes when that commit is on disk, and the request path awaits it before the response leaves
(docs/audit.md: the guarantee and its cost). No request ever waits for a sink.

Each sink has its own worker thread and its own cursor in the spool. The worker reads the events after its
cursor, in seq order, writes them to its sink and advances the cursor; on failure it retries the same batch with
exponential backoff and jitter, so a slow or broken sink only grows its own backlog, which stays in the spool
(across restarts too) and drains in order when the sink recovers. Sinks skip events they already hold, so the
re-delivery that follows a crash or an ambiguous failure stores nothing twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Awaitable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread

from bastion.audit.event import AuditEvent
from bastion.audit.sink import AuditSink, SealedEvent
from bastion.audit.spool import Spool

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
    spool_pending: int  # sealed, waiting for the next group commit
    spool_errors: int  # failed spool commits
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


class _Done:
    """An awaitable that is already complete (the spool wait is switched off, or nothing could be recorded)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


_DONE = _Done()


class _Worker:
    """One sink's delivery thread and counters (written only by that thread)."""

    def __init__(self, sink: AuditSink) -> None:
        self.sink = sink
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.delivered = 0  # cursor: the last seq stored
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
    ) -> None:
        names = [sink.name for sink in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"audit sink names must be unique, got {names}")
        self.spool = spool
        self._workers = [_Worker(sink) for sink in sinks]
        for worker in self._workers:
            worker.delivered = spool.cursor(worker.sink.name)
        self._batch_size = batch_size
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._wait_for_spool = wait_for_spool
        self._recorded = 0
        self._started = False
        self._closed = False
        self._stopping = threading.Event()  # deliver what is in the spool, then exit
        self._abandon = threading.Event()  # exit now; the spool keeps the rest for the next start
        spool.on_commit = self._wake_workers

    @property
    def instance_id(self) -> str:
        return self.spool.instance_id

    # -- request path -------------------------------------------------------------------------------------------

    def record(self, event: AuditEvent) -> Awaitable[None]:
        """Seal `event` into the spool's next group commit. Await the result before answering the request: it
        completes once the event is durable in the spool. Never raises."""
        self._recorded += 1
        try:
            receipt = self.spool.append(event)
        except Exception:
            logger.exception("audit event %s could not be sealed; it is lost", event.event_id)
            return _DONE
        return receipt if self._wait_for_spool else _DONE

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the spool writer and one delivery thread per sink (undelivered events from before a restart
        go out first)."""
        if self._started:
            return
        self._started = True
        self.spool.start()
        for worker in self._workers:
            worker.thread = threading.Thread(
                target=self._run_worker, args=(worker,), name=f"audit-{worker.sink.name}", daemon=True
            )
            worker.thread.start()

    def _wake_workers(self, _seq: int) -> None:
        for worker in self._workers:
            if not worker.wake.is_set():
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
        self._wake_workers(0)
        await anyio.to_thread.run_sync(self._join_and_close)

    def _join_and_close(self) -> None:
        for worker in self._workers:
            if worker.thread is not None:
                worker.thread.join()
        self.spool.close()  # commits the final cursors
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
            spool_errors=self.spool.commit_errors,
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

    def _run_worker(self, worker: _Worker) -> None:
        reader = self.spool.open_reader()
        try:
            self._deliver(worker, reader)
        finally:
            reader.close()

    def _deliver(self, worker: _Worker, reader: Any) -> None:
        batch: list[SealedEvent] = []
        failures = 0
        while not self._abandon.is_set():
            if not batch:
                worker.wake.clear()  # clear before looking, so a commit after the look wakes us again
                batch = self._read(worker, reader)
                if not batch:
                    if self._stopping.is_set():
                        return
                    worker.wake.wait(1.0)
                    continue
            try:
                worker.sink.write(batch)
            except Exception as exc:
                failures += 1
                delay = self._backoff(failures)
                self._note_failure(worker, batch, failures, delay, exc)
                self._abandon.wait(delay)
                continue
            worker.written += len(batch)
            worker.delivered = batch[-1].seq
            self.spool.mark_delivered(worker.sink.name, worker.delivered)
            batch = []
            if failures:
                logger.warning("audit sink %s recovered after %d failed attempts", worker.sink.name, failures)
                failures = 0
