"""The audit pipeline: `record()` on the request path, sink writes on writer threads.

`record()` only appends the event to each sink's in-memory lane (about a microsecond per sink) and never waits.
Each sink has its own lane and writer thread, so a slow or failing sink never holds up the others: its thread
keeps the failed batch, retries it with exponential backoff, and writes the lane in order once the sink recovers.
A lane holds at most `queue_size` events; beyond that new events for that sink are counted in `dropped` and an
ERROR is logged. (A durable spool that removes even that loss comes later.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.to_thread

from bastion.audit.event import AuditEvent
from bastion.audit.sink import AuditSink

__all__ = ["AuditLog", "AuditStats", "SinkStats"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SinkStats:
    name: str
    written: int  # events this sink has stored
    errors: int  # failed write attempts
    dropped: int  # events never given to this sink (lane full, or abandoned at shutdown)
    pending: int  # events waiting, including a batch being retried
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AuditStats:
    recorded: int  # events passed to record()
    written: int  # events stored by every sink (the slowest sink's count)
    dropped: int  # events lost, summed over sinks
    queue_depth: int  # the longest lane
    sinks: dict[str, SinkStats]

    @property
    def sink_errors(self) -> dict[str, int]:
        return {name: stats.errors for name, stats in self.sinks.items()}


class _Lane:
    """One sink's queue, counters and writer thread. Counters are written under `AuditLog._lock` (record side)
    or only by the lane's own thread (write side)."""

    def __init__(self, sink: AuditSink) -> None:
        self.sink = sink
        self.queue: deque[AuditEvent] = deque()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.enqueued = 0
        self.written = 0
        self.in_flight = 0
        self.errors = 0
        self.dropped = 0
        self.dropped_unreported = 0
        self.last_error: str | None = None

    def stats(self) -> SinkStats:
        return SinkStats(
            name=self.sink.name,
            written=self.written,
            errors=self.errors,
            dropped=self.dropped,
            pending=len(self.queue) + self.in_flight,
            last_error=self.last_error,
        )


class AuditLog:
    """Fan-out of audit events to sinks without blocking the caller.

    Usage: `log = AuditLog([SqliteAuditSink(path)]); log.start(); log.record(event); ...; await log.aclose()`."""

    def __init__(
        self,
        sinks: Sequence[AuditSink],
        queue_size: int = 100_000,
        batch_size: int = 500,
        *,
        retry_initial_seconds: float = 0.1,
        retry_max_seconds: float = 30.0,
    ) -> None:
        names = [sink.name for sink in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"audit sink names must be unique, got {names}")
        self._lanes = [_Lane(sink) for sink in sinks]
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._lock = threading.Lock()
        self._recorded = 0
        self._started = False
        self._closed = False
        self._stopping = threading.Event()  # finish what is queued, then exit
        self._abandon = threading.Event()  # exit now, even with events pending (shutdown timed out)

    # -- request path -------------------------------------------------------------------------------------------

    def record(self, event: AuditEvent) -> None:
        """Queue `event` for every sink. Never blocks, never raises for a full queue (it counts and logs)."""
        first_drops: list[_Lane] = []
        with self._lock:
            self._recorded += 1
            for lane in self._lanes:
                if self._closed or len(lane.queue) >= self._queue_size:
                    lane.dropped += 1
                    lane.dropped_unreported += 1
                    if lane.dropped_unreported == 1:
                        first_drops.append(lane)
                else:
                    lane.queue.append(event)
                    lane.enqueued += 1
        for lane in self._lanes:
            if not lane.wake.is_set():  # setting an already set Event still takes its lock: skip it
                lane.wake.set()
        for lane in first_drops:
            logger.error(
                "audit sink %s: dropping events (%s); later drops are counted and reported when it catches up",
                lane.sink.name,
                "the audit log is closed" if self._closed else f"{self._queue_size} events already waiting",
            )

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start one writer thread per sink. Events recorded before this wait in the lanes."""
        if self._started:
            return
        self._started = True
        for lane in self._lanes:
            lane.thread = threading.Thread(
                target=self._run_lane, args=(lane,), name=f"audit-{lane.sink.name}", daemon=True
            )
            lane.thread.start()

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - a bool, not a cancel
        """Wait until every event recorded before this call is stored by every sink. False on timeout."""
        with self._lock:
            targets = [(lane, lane.enqueued) for lane in self._lanes]
        if all(lane.written >= target for lane, target in targets):
            return True
        if not self._started:
            raise RuntimeError("AuditLog.flush() before start(): nothing is writing the queued events")
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        # Polling keeps the writer threads free of event-loop plumbing; flush is for tests and shutdown.
        while not all(lane.written >= target for lane, target in targets):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    async def aclose(self, timeout: float | None = 10.0) -> None:  # noqa: ASYNC109 - bounds the flush only
        """Flush (up to `timeout`), stop the writers and close the sinks. Events still unwritten are logged as lost."""
        if self._closed:
            return
        if self._started and not await self.flush(timeout):
            self._abandon.set()
        with self._lock:
            self._closed = True
        self._stopping.set()
        for lane in self._lanes:
            lane.wake.set()
        await anyio.to_thread.run_sync(self._join_and_close)

    def _join_and_close(self) -> None:
        for lane in self._lanes:
            if lane.thread is not None:
                lane.thread.join()
            lost = len(lane.queue) + lane.in_flight
            if lost:
                lane.dropped += lost
                logger.error(
                    "audit sink %s: %d events were never written (still failing at shutdown: %s)",
                    lane.sink.name,
                    lost,
                    lane.last_error,
                )
            try:
                lane.sink.close()
            except Exception:
                logger.exception("audit sink %s failed to close", lane.sink.name)

    def stats(self) -> AuditStats:
        sinks = {lane.sink.name: lane.stats() for lane in self._lanes}
        return AuditStats(
            recorded=self._recorded,
            written=min((stats.written for stats in sinks.values()), default=0),
            dropped=sum(stats.dropped for stats in sinks.values()),
            queue_depth=max((stats.pending for stats in sinks.values()), default=0),
            sinks=sinks,
        )

    # -- writer threads -----------------------------------------------------------------------------------------

    def _take_batch(self, lane: _Lane) -> list[AuditEvent]:
        batch: list[AuditEvent] = []
        while lane.queue and len(batch) < self._batch_size:
            batch.append(lane.queue.popleft())
        lane.in_flight = len(batch)
        return batch

    @staticmethod
    def _note_failure(lane: _Lane, batch_size: int, failures: int, delay: float, exc: Exception) -> None:
        lane.errors += 1
        lane.last_error = f"{type(exc).__name__}: {exc}"
        if failures & (failures - 1) == 0:  # attempts 1, 2, 4, 8, ...: keeps reminding without flooding the log
            logger.error(
                "audit sink %s failed to write %d events (attempt %d), retrying in %.1fs: %s",
                lane.sink.name,
                batch_size,
                failures,
                delay,
                lane.last_error,
                exc_info=exc if failures == 1 else None,  # the traceback once
            )

    def _run_lane(self, lane: _Lane) -> None:
        batch: list[AuditEvent] = []
        failures = 0
        while not self._abandon.is_set():
            if not batch:
                lane.wake.clear()  # clear before looking, so a record() after the look wakes us again
                batch = self._take_batch(lane)
                if not batch:
                    if self._stopping.is_set():
                        return
                    lane.wake.wait()
                    continue
            try:
                lane.sink.write(batch)
            except Exception as exc:
                failures += 1
                delay = min(self._retry_initial * 2 ** (failures - 1), self._retry_max)
                self._note_failure(lane, len(batch), failures, delay, exc)
                self._abandon.wait(delay)
                continue
            lane.written += len(batch)
            lane.in_flight = 0
            batch = []
            if failures:
                logger.warning("audit sink %s recovered after %d failed attempts", lane.sink.name, failures)
                failures = 0
            if lane.dropped_unreported:
                with self._lock:
                    dropped, lane.dropped_unreported = lane.dropped_unreported, 0
                logger.error(
                    "audit sink %s: %d events were dropped because its queue was full", lane.sink.name, dropped
                )
