"""The spool: writes on the request path, fsync groups, the chain head across restarts and crashes, slots,
failures, segments, pruning, the upgrade from the SQLite spool."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.audit.helpers import Sealer, spooled

from bastion.audit import segments
from bastion.audit.event import AuditEvent
from bastion.audit.spool import DONE, Spool, ThreadReceipt, read_heads

pytestmark = pytest.mark.anyio


def _wait_until(condition: Callable[[], bool], timeout: float = 10) -> bool:
    """Wait for the spool's thread to make `condition` true; whether it did."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


async def test_an_appended_event_is_in_the_log_file_when_the_receipt_is_awaited(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.start()
    try:
        receipt = spool.append(AuditEvent(subject="alice"))
        assert receipt is DONE  # durable against a crash of the process already: nothing to wait for
        await receipt
        [(seq, line)] = spooled(tmp_path)  # read from the file, not from the spool's memory
        assert seq == 1
        assert json.loads(line)["subject"] == "alice"
        assert spool.committed_seq == 1
    finally:
        spool.close()


async def test_with_fsync_zero_concurrent_appends_share_fsyncs(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync_ms=0)
    spool.start()
    try:
        receipts = [spool.append(AuditEvent(subject=f"user{number}")) for number in range(2000)]
        assert all(isinstance(receipt, asyncio.Future) for receipt in receipts)
        await asyncio.gather(*receipts)
        assert spool.durable_seq == 2000
        assert [seq for seq, _ in spooled(tmp_path)] == list(range(1, 2001))
        assert spool.syncs < 100  # 2000 events written at once are not 2000 fsyncs
    finally:
        spool.close()


def test_with_fsync_zero_a_receipt_completes_only_after_an_fsync(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync_ms=0)
    receipt = spool.append(AuditEvent())
    assert isinstance(receipt, ThreadReceipt)
    assert not receipt.wait(0.2)  # written, but nothing has fsynced it: the thread is not running
    assert (spool.committed_seq, spool.durable_seq) == (1, 0)
    spool.start()
    try:
        assert receipt.wait(10)
        assert spool.durable_seq == 1
        assert spool.syncs >= 1
    finally:
        spool.close()


def test_with_fsync_every_n_ms_the_log_is_fsynced_in_the_background(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync_ms=20)
    spool.start()
    try:
        assert spool.append(AuditEvent()) is DONE
        _wait_until(lambda: spool.durable_seq == 1)
        assert spool.durable_seq == 1
        assert spool.syncs >= 1
    finally:
        spool.close()


def test_events_kept_in_memory_for_the_sinks_are_not_tracked_by_the_garbage_collector(tmp_path: Path) -> None:
    """The spool holds thousands of recent events for its sinks; as models they made every full collection walk
    them (30-80 ms pauses under load). They are kept as flat tuples the collector stops tracking."""
    spool = Spool(tmp_path)
    spool.start()
    try:
        for n in range(50):
            spool.append(AuditEvent(subject=f"user{n}", repo="acme/api", tool="get_file_contents", metadata={"n": n}))
        _wait_until(lambda: spool.durable_seq == 50)
        gc.collect()
        kept = spool._recent
        assert len(kept) == 50
        assert not any(gc.is_tracked(record) for record in kept)
        [first] = spool.read(spool.open_reader(), 0, 1)  # what a sink receives is still complete
        assert (first.seq, first.subject, first.repo, first.tool) == (1, "user0", "acme/api", "get_file_contents")
        assert json.loads(first.line)["hash"] == first.hash
    finally:
        spool.close()


def test_a_receipt_outside_an_event_loop_can_be_waited_for(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.start()
    try:
        receipt = spool.append(AuditEvent())
        assert isinstance(receipt, ThreadReceipt)
        assert receipt.wait(10)
    finally:
        spool.close()


def test_a_restarted_spool_keeps_its_instance_and_continues_the_chain(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.start()
    for number in range(3):
        first.append(AuditEvent(subject=f"before{number}"))
    first.close()
    second = Spool(tmp_path)
    second.start()
    try:
        receipt = second.append(AuditEvent(subject="after"))
        assert isinstance(receipt, ThreadReceipt)
        assert receipt.wait(10)
        assert second.instance_id == first.instance_id
        assert second.slot == 0
        lines = [json.loads(line) for _, line in spooled(tmp_path)]
        assert [line["seq"] for line in lines] == [1, 2, 3, 4]
        assert lines[3]["prev_hash"] == lines[2]["hash"]
    finally:
        second.close()


_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from bastion.audit.event import AuditEvent
from bastion.audit.spool import Spool

spool = Spool(Path(sys.argv[1]))
for number in range(200):
    spool.append(AuditEvent(subject=f"acknowledged{number}"))  # returns: the request would now be answered
print(spool.committed_seq, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no fsync, no atexit
"""


def test_every_event_whose_append_returned_survives_kill_9(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.strip() == "200"
    spool = Spool(tmp_path)
    try:
        assert spool.sealed_seq == 200
        lines = [json.loads(line) for _, line in spooled(tmp_path)]
        assert [line["subject"] for line in lines] == [f"acknowledged{number}" for number in range(200)]
        assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(lines))
    finally:
        spool.close()


def test_a_record_torn_by_a_crash_is_cut_and_the_chain_continues_before_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = Spool(tmp_path)
    for number in range(3):
        first.append(AuditEvent(subject=f"kept{number}"))
    first.close()
    [segment] = segments.list_segments(tmp_path / "slot-0")
    intact = segment.path.read_bytes()
    torn = segments.encode_record(4, b'{"subject":"never acknowledged"}')[:-7]  # a write() cut short
    segment.path.write_bytes(intact + torn)

    second = Spool(tmp_path)
    try:
        assert "cutting a torn record after seq 3" in caplog.text
        assert segment.path.read_bytes() == intact
        second.append(AuditEvent(subject="next"))
        lines = [json.loads(line) for _, line in spooled(tmp_path)]
        assert [(line["seq"], line["subject"]) for line in lines] == [
            (1, "kept0"),
            (2, "kept1"),
            (3, "kept2"),
            (4, "next"),
        ]
        assert lines[3]["prev_hash"] == lines[2]["hash"]
    finally:
        second.close()


def test_a_segment_whose_creation_was_cut_short_is_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = Spool(tmp_path)
    first.append(AuditEvent(subject="one"))
    first.close()
    empty = tmp_path / "slot-0" / segments.segment_name(2)
    empty.write_bytes(b"")  # opened, then the process died before its first write()
    second = Spool(tmp_path)
    try:
        assert f"removing {empty.name}, which holds no valid record" in caplog.text
        assert not empty.exists()
        second.append(AuditEvent(subject="two"))
        lines = [json.loads(line) for _, line in spooled(tmp_path)]
        assert [line["seq"] for line in lines] == [1, 2]
        assert lines[1]["prev_hash"] == lines[0]["hash"]
    finally:
        second.close()


def test_the_head_is_found_in_a_segment_that_holds_only_its_header(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1)  # every event starts a segment
    for _ in range(2):
        spool.append(AuditEvent())
    spool.close()
    [first, second] = segments.list_segments(tmp_path / "slot-0")
    head_hash = json.loads(spooled(tmp_path)[1][1])["hash"]
    first.path.unlink()  # pruned
    # The newest segment as a crash could leave it: the header made it, the record did not.
    header = segments.encode_header(spool.instance_id, 3, head_hash)
    (tmp_path / "slot-0" / segments.segment_name(3)).write_bytes(header + b"3 0000")
    again = Spool(tmp_path)
    try:
        assert (again.sealed_seq, again.instance_id) == (2, spool.instance_id)
        again.append(AuditEvent())
        assert json.loads(spooled(tmp_path)[-1][1])["prev_hash"] == head_hash
        assert second.path.exists()
    finally:
        again.close()


def test_two_running_spools_in_one_directory_get_their_own_slots(tmp_path: Path) -> None:
    first, second = Spool(tmp_path), Spool(tmp_path)
    try:
        assert (first.slot, second.slot) == (0, 1)
        assert first.instance_id != second.instance_id
    finally:
        first.close()
        second.close()
    again = Spool(tmp_path)  # both released: the first free slot is 0 again, with its instance
    try:
        assert (again.slot, again.instance_id) == (0, first.instance_id)
    finally:
        again.close()


def test_events_appended_before_start_are_in_the_log_and_durable_on_close(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    receipt = spool.append(AuditEvent(subject="early"))
    spool.close()
    assert isinstance(receipt, ThreadReceipt)
    assert receipt.wait(0)
    assert spool.durable_seq == 1
    assert [json.loads(line)["subject"] for _, line in spooled(tmp_path)] == ["early"]


def test_segments_rotate_and_a_reader_far_behind_reads_them_from_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4000)
    spool.start()
    try:
        for number in range(50):
            spool.append(AuditEvent(subject=f"user{number}", metadata={"number": number}))
        spool.request_sync()
        _wait_until(lambda: spool.durable_seq == 50)
        reader = spool.open_reader()
        from_memory = spool.read(reader, 0, 1000)
        spool.release(50)  # forgotten in memory: what follows comes from the segment files
        from_disk = spool.read(reader, 0, 20) + spool.read(reader, 20, 1000)
        assert len(segments.list_segments(tmp_path / "slot-0")) > 5
        assert [event.seq for event in from_disk] == list(range(1, 51))
        assert from_disk == from_memory  # every column and the line, exactly
        assert spool.read(reader, 50, 10) == []
    finally:
        spool.close()


def test_a_failing_write_releases_requests_and_retries_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    spool.start()
    first = spool.append(AuditEvent(subject="one"))
    assert isinstance(first, ThreadReceipt)
    assert first.wait(10)
    [segment] = segments.list_segments(tmp_path / "slot-0")
    size = segment.path.stat().st_size
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # The kernel lets the segment grow by 10 bytes, then refuses (EFBIG), as a full disk would (ENOSPC).
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, limits[1]))
    try:
        second = spool.append(AuditEvent(subject="two"))
        third = spool.append(AuditEvent(subject="three"))
        assert isinstance(second, ThreadReceipt)
        assert second.wait(0)  # released although not stored: an audit failure does not stop requests
        assert isinstance(third, ThreadReceipt)
        assert third.wait(0)
        assert (spool.pending, spool.committed_seq) == (2, 1)
        assert spool.write_errors >= 1
        assert "writing 1 events failed (attempt 1)" in caplog.text
        assert segment.path.stat().st_size == size  # the 10 bytes that did reach the file were cut
        assert [json.loads(line)["subject"] for _, line in spooled(tmp_path)] == ["one"]
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous_handler)
    try:
        _wait_until(lambda: spool.committed_seq == 3)  # the background thread retries
        # ... and says so once the last of them is written (the fsync thread may commit them just before).
        assert _wait_until(lambda: "writable again after" in caplog.text)
        lines = [json.loads(line) for _, line in spooled(tmp_path)]
        assert [line["subject"] for line in lines] == ["one", "two", "three"]
        assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(lines))
        assert spool.pending == 0
    finally:
        spool.close()


def test_delivered_events_are_pruned_down_to_the_retention(tmp_path: Path) -> None:
    spool = Spool(tmp_path, retain_events=5, segment_bytes=1)  # one event per segment: pruning is exact
    assert spool.cursor("sink-a") == 0
    spool.start()
    try:
        receipts = [spool.append(AuditEvent()) for _ in range(20)]
        for receipt in receipts:
            assert isinstance(receipt, ThreadReceipt)
            assert receipt.wait(10)
        spool.mark_delivered("sink-a", 18)
        _wait_until(lambda: len(spooled(tmp_path)) <= 7)
        assert [seq for seq, _ in spooled(tmp_path)] == list(range(14, 21))  # 18 - 5 + 1 .. 20
    finally:
        spool.close()
    [head] = read_heads(tmp_path)
    assert (head.seq, head.cursors, head.path) == (20, {"sink-a": 18}, tmp_path / "slot-0")


def test_a_new_sink_starts_with_the_oldest_event_still_held(tmp_path: Path) -> None:
    spool = Spool(tmp_path, retain_events=0, segment_bytes=1)
    spool.cursor("old")
    spool.start()
    receipts = [spool.append(AuditEvent()) for _ in range(10)]
    for receipt in receipts:
        assert isinstance(receipt, ThreadReceipt)
        assert receipt.wait(10)
    spool.mark_delivered("old", 6)
    _wait_until(lambda: spooled(tmp_path)[0][0] == 7)
    assert spool.cursor("new") == 6
    spool.close()


def test_appends_from_many_threads_get_distinct_consecutive_seqs(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.start()

    def produce() -> None:
        for _ in range(500):
            spool.append(AuditEvent())

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spool.close()
    lines = [json.loads(line) for _, line in spooled(tmp_path)]
    assert [line["seq"] for line in lines] == list(range(1, 2001))
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(lines))


def _legacy_spool(path: Path, instance_id: str, lines: list[str], cursors: dict[str, int]) -> None:
    """A spool slot in the first format (one SQLite file), as the previous version wrote it."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, time TEXT NOT NULL, subject TEXT, "
        "repo TEXT, decision TEXT NOT NULL, tool TEXT, outcome TEXT NOT NULL, hash TEXT NOT NULL, line TEXT NOT NULL);"
        "CREATE TABLE cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
    )
    documents = [json.loads(line) for line in lines]
    connection.executemany(
        "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            (d["seq"], d["event_id"], d["time"], d["subject"], None, d["decision"], None, d["outcome"], d["hash"], line)
            for d, line in zip(documents, lines, strict=True)
        ],
    )
    meta = {"instance_id": instance_id, "head_seq": str(documents[-1]["seq"]), "head_hash": documents[-1]["hash"]}
    connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    connection.executemany("INSERT INTO cursors VALUES (?, ?)", cursors.items())
    connection.close()


def test_a_spool_of_the_sqlite_format_is_moved_into_the_log_with_its_chain_and_backlog(tmp_path: Path) -> None:
    sealer = Sealer("0123456789abcdef")
    sealed = sealer([AuditEvent(subject=f"old{number}") for number in range(1, 11)])
    legacy = tmp_path / "slot-0.db"
    # Events 1-3 were pruned long ago; the sink had stored up to 7.
    _legacy_spool(legacy, "0123456789abcdef", [event.line for event in sealed[3:]], {"sqlite": 7})
    [before] = read_heads(tmp_path)  # verify reads a slot that has not been upgraded yet
    assert (before.path, before.instance_id, before.seq, before.cursors) == (
        legacy,
        "0123456789abcdef",
        10,
        {"sqlite": 7},
    )

    spool = Spool(tmp_path)
    try:
        assert (spool.instance_id, spool.sealed_seq) == ("0123456789abcdef", 10)
        assert spool.cursor("sqlite") == 7
        backlog = spool.read(spool.open_reader(), 7, 100)
        assert [(event.seq, event.line) for event in backlog] == [(event.seq, event.line) for event in sealed[7:]]
        spool.append(AuditEvent(subject="new"))
    finally:
        spool.close()
    assert not legacy.exists()
    assert (tmp_path / "slot-0.db.migrated").exists()
    lines = [json.loads(line) for _, line in spooled(tmp_path)]
    assert [line["seq"] for line in lines] == list(range(4, 12))
    assert lines[-1]["prev_hash"] == sealed[-1].hash
    [after] = read_heads(tmp_path)
    assert (after.path, after.instance_id, after.seq) == (tmp_path / "slot-0", "0123456789abcdef", 11)


def test_read_heads_reads_a_live_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    try:
        for _ in range(3):
            spool.append(AuditEvent())
        [head] = read_heads(tmp_path)
        assert (head.instance_id, head.seq) == (spool.instance_id, 3)
        assert head.hash == json.loads(spooled(tmp_path)[-1][1])["hash"]
    finally:
        spool.close()
    assert os.listdir(tmp_path / "slot-0")  # closing removes nothing
