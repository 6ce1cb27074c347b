"""AuditLog: the request path waits for the spool only; every sink gets every event once, in order, whatever
fails, across restarts."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest

from bastion.audit.event import AuditEvent
from bastion.audit.pipeline import AuditLog
from bastion.audit.sink import AuditQuery, SealedEvent
from bastion.audit.spool import Spool
from bastion.audit.sqlite import SqliteAuditSink

pytestmark = pytest.mark.anyio


class CollectingSink:
    """A sink that keeps what it receives; it can fail a number of times, or hold each write at a gate."""

    def __init__(self, name: str = "collect", failures: int = 0, gate: threading.Event | None = None) -> None:
        self.name = name
        self.failures_left = failures
        self.gate = gate
        self.attempts = 0
        self.batches: list[list[SealedEvent]] = []
        self.closed = False

    def write(self, events: Sequence[SealedEvent]) -> None:
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

    @property
    def seqs(self) -> list[int]:
        return [event.seq for batch in self.batches for event in batch]


def _events(count: int, prefix: str = "user") -> list[AuditEvent]:
    return [AuditEvent(subject=f"{prefix}{number}", tool="get_file_contents") for number in range(count)]


async def _eventually(condition: Callable[[], bool]) -> None:
    """Wait for a writer thread to make `condition` true (it cannot set an event on our loop)."""
    with anyio.fail_after(30):
        while not condition():  # noqa: ASYNC110 - polling another thread's progress
            await anyio.sleep(0.005)


def _spooled_subjects(spool_dir: Path) -> list[str]:
    with sqlite3.connect(spool_dir / "slot-0.db") as connection:
        lines = [row[0] for row in connection.execute("SELECT line FROM events ORDER BY seq")]
    connection.close()
    return [json.loads(line)["subject"] for line in lines]


async def test_awaiting_record_means_the_event_is_in_the_spool(tmp_path: Path) -> None:
    gate = threading.Event()  # the sink never gets to store anything while we look
    sink = CollectingSink(gate=gate)
    log = AuditLog(Spool(tmp_path / "spool"), [sink])
    log.start()
    try:
        await log.record(AuditEvent(subject="alice"))
        assert _spooled_subjects(tmp_path / "spool") == ["alice"]
        assert sink.event_ids == []
    finally:
        gate.set()
        await log.aclose()
    assert [event.seq for event in sink.batches[0]] == [1]


async def test_events_reach_every_sink_in_order_in_batches(tmp_path: Path) -> None:
    first, second = CollectingSink("first"), CollectingSink("second")
    log = AuditLog(Spool(tmp_path), [first, second], batch_size=500)
    events = _events(1200)
    receipts = [log.record(event) for event in events]  # recorded before start: they wait in the spool's queue
    log.start()
    for receipt in receipts:
        await receipt
    assert await log.flush(timeout=30)
    expected = [event.event_id for event in events]
    assert first.event_ids == second.event_ids == expected
    assert first.seqs == list(range(1, 1201))
    assert all(len(batch) <= 500 for batch in first.batches)
    stats = log.stats()
    assert (stats.recorded, stats.spooled_seq, stats.written, stats.backlog) == (1200, 1200, 1200, 0)
    assert stats.sink_errors == {"first": 0, "second": 0}
    await log.aclose()
    assert first.closed
    assert second.closed


async def test_a_failing_sink_is_retried_until_every_event_arrives_once_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = CollectingSink("flaky", failures=3)
    log = AuditLog(Spool(tmp_path), [sink], batch_size=50, retry_initial_seconds=0.01, retry_max_seconds=0.05)
    log.start()
    events = _events(120)
    for event in events:
        await log.record(event)
    assert await log.flush(timeout=30)

    assert sink.event_ids == [event.event_id for event in events]
    stats = log.stats()
    assert stats.sink_errors == {"flaky": 3}
    assert stats.sinks["flaky"].last_error == "OSError: sink flaky is down (attempt 3)"
    failure_lines = [record.getMessage() for record in caplog.records if "failed to store" in record.getMessage()]
    assert len(failure_lines) == 2  # attempts 1 and 2 are logged, attempt 3 is not
    assert failure_lines[0].startswith("audit sink flaky failed to store ")
    assert "(seq 1-" in failure_lines[0]
    assert "attempt 1), retrying in 0.0s: OSError: sink flaky is down (attempt 1)" in failure_lines[0]
    assert "audit sink flaky recovered after 3 failed attempts" in caplog.text
    await log.aclose()


async def test_a_failing_sink_holds_up_neither_requests_nor_other_sinks(tmp_path: Path) -> None:
    broken = CollectingSink("broken", failures=1_000_000)
    stuck_gate = threading.Event()
    stuck = CollectingSink("stuck", gate=stuck_gate)
    healthy = CollectingSink("healthy")
    log = AuditLog(Spool(tmp_path), [broken, stuck, healthy], retry_initial_seconds=0.01, retry_max_seconds=0.02)
    log.start()
    events = _events(100)
    for event in events:
        await log.record(event)  # completes although two sinks store nothing

    await _eventually(lambda: len(healthy.event_ids) == 100)
    await _eventually(lambda: broken.attempts >= 2)
    stats = log.stats()
    assert (stats.sinks["healthy"].pending, stats.sinks["broken"].pending, stats.sinks["stuck"].pending) == (
        0,
        100,
        100,
    )
    assert stats.sinks["broken"].lag_seconds > 0
    assert stats.written == 0  # the slowest sink's count

    broken.failures_left = 0
    stuck_gate.set()
    assert await log.flush(timeout=30)
    assert broken.event_ids == stuck.event_ids == healthy.event_ids == [event.event_id for event in events]
    await log.aclose()


async def test_a_sinks_backlog_survives_a_restart_and_drains_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = CollectingSink("remote", failures=1_000_000)
    log = AuditLog(Spool(tmp_path), [dead], retry_initial_seconds=0.01, retry_max_seconds=0.02)
    log.start()
    events = _events(30)
    for event in events:
        await log.record(event)
    await log.aclose(timeout=0.2)
    assert "audit sink remote: 30 events wait in the spool" in caplog.text

    revived = CollectingSink("remote")
    restarted = AuditLog(Spool(tmp_path), [revived])
    restarted.start()
    later = _events(5, prefix="later")
    for event in later:
        await restarted.record(event)
    assert await restarted.flush(timeout=30)
    assert revived.event_ids == [event.event_id for event in [*events, *later]]
    assert revived.seqs == list(range(1, 36))
    await restarted.aclose()


async def test_redelivery_after_a_crash_stores_nothing_twice(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    log = AuditLog(Spool(tmp_path / "spool"), [SqliteAuditSink(database)])
    log.start()
    events = _events(50)
    for event in events:
        await log.record(event)
    await log.aclose()
    # A crash after the sink committed but before the spool recorded its cursor: the cursor is behind.
    with sqlite3.connect(tmp_path / "spool" / "slot-0.db") as connection:
        connection.execute("UPDATE cursors SET seq = 10 WHERE sink = 'sqlite'")
    connection.close()

    restarted = AuditLog(Spool(tmp_path / "spool"), [SqliteAuditSink(database)])
    restarted.start()
    await restarted.record(AuditEvent(subject="after"))
    assert await restarted.flush(timeout=30)
    await restarted.aclose()
    reader = SqliteAuditSink(database)
    try:
        stored = [event for _, event in reader.query(AuditQuery(limit=1000))]
    finally:
        reader.close()
    assert [event.event_id for event in stored] == [event.event_id for event in events] + [stored[-1].event_id]
    assert [event.seq for event in stored] == list(range(1, 52))


async def test_with_wait_for_spool_off_record_returns_at_once(tmp_path: Path) -> None:
    log = AuditLog(Spool(tmp_path), [CollectingSink()], wait_for_spool=False)
    await log.record(AuditEvent())  # not started: nothing commits, yet the await completes
    assert log.stats().spooled_seq == 0
    log.start()
    assert await log.flush(timeout=30)
    await log.aclose()


async def test_flush_before_start_refuses_to_wait_forever(tmp_path: Path) -> None:
    log = AuditLog(Spool(tmp_path), [CollectingSink()])
    assert await log.flush(timeout=1)  # nothing recorded: nothing to wait for
    log.record(AuditEvent())
    with pytest.raises(RuntimeError, match=r"flush\(\) before start\(\)"):
        await log.flush(timeout=1)
    await log.aclose()


async def test_records_after_close_are_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog(Spool(tmp_path), [CollectingSink()])
    log.start()
    await log.aclose()
    event = AuditEvent(subject="too-late")
    await log.record(event)
    assert log.stats().dropped == 1
    assert f"audit event {event.event_id} recorded after the audit log closed: not stored" in caplog.text


async def test_record_is_safe_from_many_threads(tmp_path: Path) -> None:
    sink = CollectingSink()
    log = AuditLog(Spool(tmp_path), [sink], batch_size=64)
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
    assert sink.seqs == list(range(1, 4001))
    assert len(set(sink.event_ids)) == 4000
    await log.aclose()


def test_sink_names_must_be_unique(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    try:
        with pytest.raises(ValueError, match=r"audit sink names must be unique, got \['a', 'a'\]"):
            AuditLog(spool, [CollectingSink("a"), CollectingSink("a")])
    finally:
        spool.close()
