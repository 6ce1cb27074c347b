"""AuditLog: the request path waits for the spool only; every sink gets every event once, in order, whatever
fails, across restarts."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest
from tests.audit.helpers import spooled

from bastion.audit import segments
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
    return [json.loads(line)["subject"] for _, line in spooled(spool_dir)]


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
    # A crash after the sink committed but before the spool saved its cursor: the cursor is behind.
    cursors = tmp_path / "spool" / "slot-0" / "cursors.json"
    assert json.loads(cursors.read_text()) == {"sqlite": 50}
    cursors.write_text(json.dumps({"sqlite": 10}))

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


async def test_with_wait_for_spool_off_record_returns_before_the_fsync(tmp_path: Path) -> None:
    waiting = AuditLog(Spool(tmp_path / "waiting", fsync_ms=0), [CollectingSink()])
    receipt = waiting.record(AuditEvent())
    assert isinstance(receipt, asyncio.Future)
    assert not receipt.done()  # not started: nothing fsyncs, so a request would wait
    await waiting.aclose()
    assert receipt.done()  # closing fsyncs what was written

    log = AuditLog(Spool(tmp_path / "not-waiting", fsync_ms=0), [CollectingSink()], wait_for_spool=False)
    await log.record(AuditEvent())  # not started: nothing fsyncs, yet the await completes
    assert (log.spool.committed_seq, log.spool.durable_seq) == (1, 0)
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


class DurabilityCheckingSink(CollectingSink):
    """Records, for each batch, whether the spool had fsynced all of it; `sync` counts and can fail."""

    def __init__(self, spool: Spool, name: str = "checked", sync_failures: int = 0) -> None:
        super().__init__(name)
        self.spool = spool
        self.unsynced_batches = 0
        self.sync_failures_left = sync_failures
        self.synced_up_to: list[int] = []

    def write(self, events: Sequence[SealedEvent]) -> None:
        if events[-1].seq > self.spool.durable_seq:
            self.unsynced_batches += 1
        super().write(events)

    def sync(self) -> None:
        if self.sync_failures_left > 0:
            self.sync_failures_left -= 1
            raise OSError("the sink's disk is gone")
        self.synced_up_to.append(self.seqs[-1] if self.seqs else 0)


async def test_a_sink_that_keeps_up_gets_full_batches_of_fsynced_events_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync_ms=10)
    sink = DurabilityCheckingSink(spool)
    # An interval longer than the test: every batch before the flush is delivered because it is full.
    log = AuditLog(spool, [sink], batch_size=100, delivery_interval=600)
    log.start()
    for event in _events(99):
        await log.record(event)
    await anyio.sleep(0.3)  # fsynced by now (every 10 ms), and still not a full batch: nothing is delivered
    assert sink.batches == []
    for event in _events(201, prefix="more"):
        await log.record(event)
    await _eventually(lambda: len(sink.seqs) == 300)
    assert [len(batch) for batch in sink.batches] == [100, 100, 100]
    assert sink.seqs == list(range(1, 301))
    assert sink.unsynced_batches == 0  # a sink never holds an event the spool could still lose
    await log.record(AuditEvent(subject="last"))
    assert await log.flush(timeout=30)  # a flush does not wait for the interval
    assert sink.seqs[-1] == 301
    await log.aclose()


async def test_a_partial_batch_is_delivered_after_the_interval(tmp_path: Path) -> None:
    sink = CollectingSink()
    log = AuditLog(Spool(tmp_path, fsync_ms=10), [sink], batch_size=500, delivery_interval=0.05)
    log.start()
    for event in _events(5):
        await log.record(event)
    await _eventually(lambda: len(sink.seqs) == 5)
    assert [len(batch) for batch in sink.batches] == [5]
    await log.aclose()


async def test_the_saved_cursor_never_runs_ahead_of_what_the_sink_has_synced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    sink = DurabilityCheckingSink(spool, sync_failures=1_000_000)
    log = AuditLog(spool, [sink], batch_size=10, sync_interval=0)
    log.start()
    for event in _events(30):
        await log.record(event)
    assert await log.flush(timeout=30)
    await log.aclose()
    assert sink.seqs == list(range(1, 31))  # stored (committed)...
    assert (
        "audit sink checked failed to sync (attempt 1): the sink's disk is gone; its cursor stays behind" in caplog.text
    )
    assert json.loads((tmp_path / "slot-0" / "cursors.json").read_text()) == {"checked": 0}  # ...but not durable

    spool = Spool(tmp_path)
    healthy = DurabilityCheckingSink(spool)
    restarted = AuditLog(spool, [healthy], sync_interval=0)
    restarted.start()
    assert await restarted.flush(timeout=30)
    await restarted.aclose()
    assert healthy.seqs == list(range(1, 31))  # delivered again, from the spool
    assert healthy.synced_up_to[-1] == 30
    assert json.loads((tmp_path / "slot-0" / "cursors.json").read_text()) == {"checked": 30}


async def test_an_unreadable_spool_record_is_reported_and_retried_without_stopping_delivery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, segment_bytes=1)  # one event per segment
    for event in _events(3):
        spool.append(event)
    instance_id = spool.instance_id
    spool.close()
    second = tmp_path / "slot-0" / segments.segment_name(2)
    # Damage that a CRC cannot see (the record was replaced whole, not torn): not an event at all.
    second.write_bytes(segments.encode_header(instance_id, 2, None) + segments.encode_record(2, b"not json"))

    sink = CollectingSink()
    log = AuditLog(Spool(tmp_path), [sink], retry_initial_seconds=0.01, retry_max_seconds=0.02)
    log.start()
    await _eventually(lambda: log.stats().sinks["collect"].errors >= 2)
    assert "audit sink collect: reading the spool after seq 0 failed (attempt 1)" in caplog.text
    assert log.stats().sinks["collect"].last_error is not None
    await log.aclose(timeout=0.2)
    assert sink.batches == []  # nothing is delivered out of order around the damaged record
