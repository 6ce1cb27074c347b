"""AuditLog: non-blocking record(), batched writes, retries that lose and duplicate nothing, bounded queues."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from bastion.audit.event import AuditEvent
from bastion.audit.pipeline import AuditLog
from bastion.audit.sink import AuditQuery
from bastion.audit.sqlite import SqliteAuditSink

pytestmark = pytest.mark.anyio


class CollectingSink:
    """A sink that keeps the batches it receives; it can fail a number of times, or hold each write at a gate."""

    def __init__(self, name: str = "collect", failures: int = 0, gate: threading.Event | None = None) -> None:
        self.name = name
        self.failures_left = failures
        self.gate = gate
        self.attempts = 0
        self.batches: list[list[AuditEvent]] = []
        self.closed = False

    def write(self, events: Sequence[AuditEvent]) -> None:
        self.attempts += 1
        if self.gate is not None:
            self.gate.wait(timeout=60)
        if self.failures_left > 0:
            self.failures_left -= 1
            raise OSError(f"sink {self.name} is down (attempt {self.attempts})")
        self.batches.append(list(events))

    def close(self) -> None:
        self.closed = True

    @property
    def event_ids(self) -> list[str]:
        return [event.event_id for batch in self.batches for event in batch]


def _events(count: int) -> list[AuditEvent]:
    return [AuditEvent(subject=f"user{number}", tool="get_file_contents") for number in range(count)]


async def _eventually(condition: Callable[[], bool]) -> None:
    """Wait for a writer thread to make `condition` true (it cannot set an event on our loop)."""
    with anyio.fail_after(30):
        while not condition():  # noqa: ASYNC110 - polling another thread's progress
            await anyio.sleep(0.005)


async def test_events_are_written_in_batches_in_order() -> None:
    sink = CollectingSink()
    log = AuditLog([sink], queue_size=10_000, batch_size=500)
    events = _events(1200)
    for event in events:
        log.record(event)
    log.start()
    assert await log.flush(timeout=30)

    assert [len(batch) for batch in sink.batches] == [500, 500, 200]
    assert sink.event_ids == [event.event_id for event in events]
    stats = log.stats()
    assert (stats.recorded, stats.written, stats.dropped, stats.queue_depth) == (1200, 1200, 0, 0)
    assert stats.sink_errors == {"collect": 0}
    await log.aclose()
    assert sink.closed


async def test_a_failing_sink_is_retried_until_every_event_arrives_once_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = CollectingSink("flaky", failures=3)
    log = AuditLog([sink], batch_size=50, retry_initial_seconds=0.01, retry_max_seconds=0.05)
    events = _events(120)
    for event in events[:50]:
        log.record(event)
    log.start()
    for event in events[50:]:  # recorded while the sink is failing
        log.record(event)
    assert await log.flush(timeout=30)

    assert sink.event_ids == [event.event_id for event in events]
    assert sink.attempts == 3 + len(sink.batches)
    stats = log.stats()
    assert stats.sink_errors == {"flaky": 3}
    assert stats.sinks["flaky"].last_error == "OSError: sink flaky is down (attempt 3)"
    assert (stats.written, stats.dropped) == (120, 0)
    failure_lines = [record.getMessage() for record in caplog.records if "failed to write" in record.getMessage()]
    assert failure_lines == [  # attempts 1, 2, 4, ... are logged: attempt 3 is not
        "audit sink flaky failed to write 50 events (attempt 1), retrying in 0.0s: OSError: sink flaky is down "
        "(attempt 1)",
        "audit sink flaky failed to write 50 events (attempt 2), retrying in 0.0s: OSError: sink flaky is down "
        "(attempt 2)",
    ]
    assert caplog.records[0].exc_info is not None  # the first failure carries its traceback
    assert "audit sink flaky recovered after 3 failed attempts" in caplog.text
    await log.aclose()


async def test_a_failing_sink_does_not_hold_up_the_others() -> None:
    broken = CollectingSink("broken", failures=1_000_000)
    healthy = CollectingSink("healthy")
    log = AuditLog([broken, healthy], retry_initial_seconds=0.01, retry_max_seconds=0.02)
    log.start()
    events = _events(100)
    for event in events:
        log.record(event)

    await _eventually(lambda: len(healthy.event_ids) == 100)
    await _eventually(lambda: broken.attempts >= 2)
    stats = log.stats()
    assert stats.sinks["healthy"].written == 100
    assert stats.sinks["broken"].written == 0
    assert stats.sinks["broken"].pending == 100
    assert stats.written == 0  # the slowest sink's count

    broken.failures_left = 0
    assert await log.flush(timeout=30)
    assert broken.event_ids == healthy.event_ids == [event.event_id for event in events]
    await log.aclose()


async def test_record_never_waits_for_a_stuck_sink() -> None:
    gate = threading.Event()
    sink = CollectingSink("stuck", gate=gate)
    log = AuditLog([sink], queue_size=10_000, batch_size=100)
    log.start()
    for event in _events(1000):
        log.record(event)  # the writer is blocked inside write(): this must still return at once
    assert log.stats().recorded == 1000
    assert log.stats().queue_depth == 1000
    assert not await log.flush(timeout=0.05)

    gate.set()
    assert await log.flush(timeout=30)
    assert len(sink.event_ids) == 1000
    await log.aclose()


async def test_a_full_queue_drops_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    sink = CollectingSink()
    log = AuditLog([sink], queue_size=10, batch_size=4)
    events = _events(25)
    for event in events:
        log.record(event)
    stats = log.stats()
    assert (stats.recorded, stats.dropped, stats.queue_depth) == (25, 15, 10)
    drop_warnings = [record for record in caplog.records if "dropping events" in record.getMessage()]
    assert [record.levelno for record in drop_warnings] == [logging.ERROR]  # once, not 15 times
    assert drop_warnings[0].getMessage() == (
        "audit sink collect: dropping events (10 events already waiting); later drops are counted and reported "
        "when it catches up"
    )

    log.start()
    assert await log.flush(timeout=30)
    assert sink.event_ids == [event.event_id for event in events[:10]]
    assert "audit sink collect: 15 events were dropped because its queue was full" in caplog.text
    await log.aclose()


async def test_shutdown_with_a_dead_sink_gives_up_and_reports_the_loss(caplog: pytest.LogCaptureFixture) -> None:
    sink = CollectingSink("dead", failures=1_000_000)
    log = AuditLog([sink], retry_initial_seconds=0.01, retry_max_seconds=0.02)
    log.start()
    for event in _events(5):
        log.record(event)
    assert not await log.flush(timeout=0.1)

    await log.aclose(timeout=0.1)
    assert sink.closed
    assert log.stats().dropped == 5
    assert "audit sink dead: 5 events were never written (still failing at shutdown: OSError: sink dead is down" in (
        caplog.text
    )


async def test_flush_before_start_refuses_to_wait_forever() -> None:
    log = AuditLog([CollectingSink()])
    assert await log.flush(timeout=1)  # nothing recorded: nothing to wait for
    log.record(AuditEvent())
    with pytest.raises(RuntimeError, match=r"flush\(\) before start\(\)"):
        await log.flush(timeout=1)


async def test_aclose_writes_everything_to_sqlite_and_later_records_are_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.db"
    log = AuditLog([SqliteAuditSink(path)], batch_size=500)
    log.start()
    events = _events(2000)
    for number, event in enumerate(events):
        log.record(event)
        if number % 100 == 0:
            await anyio.lowlevel.checkpoint()  # interleave with the writer, as a server would
    await log.aclose()
    assert log.stats().written == 2000

    log.record(AuditEvent(subject="too-late"))
    assert log.stats().dropped == 1
    assert "audit sink sqlite: dropping events (the audit log is closed)" in caplog.text

    reader = SqliteAuditSink(path)
    try:
        stored = reader.query(AuditQuery(limit=5000))
    finally:
        reader.close()
    assert [event.event_id for _, event in stored] == [event.event_id for event in events]


async def test_record_is_safe_from_many_threads() -> None:
    sink = CollectingSink()
    log = AuditLog([sink], batch_size=64)
    log.start()

    def produce() -> None:
        for event in _events(1000):
            log.record(event)

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert await log.flush(timeout=30)
    assert log.stats().recorded == 4000
    assert len(set(sink.event_ids)) == 4000
    await log.aclose()


def test_sink_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match=r"audit sink names must be unique, got \['a', 'a'\]"):
        AuditLog([CollectingSink("a"), CollectingSink("a")])
