"""The spool: group commit, receipts, the chain head across restarts, slots, failures, pruning."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bastion.audit.event import AuditEvent
from bastion.audit.spool import Spool, ThreadReceipt, read_heads

pytestmark = pytest.mark.anyio


def _rows(spool_dir: Path, slot: int = 0) -> list[tuple[int, str]]:
    with sqlite3.connect(spool_dir / f"slot-{slot}.db") as connection:
        rows = connection.execute("SELECT seq, line FROM events ORDER BY seq").fetchall()
    connection.close()
    return rows


async def test_a_receipt_completes_once_the_event_is_committed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.start()
    try:
        receipt = spool.append(AuditEvent(subject="alice"))
        await receipt
        [(seq, line)] = _rows(tmp_path)  # another connection sees it: it is in the file, not in memory
        assert seq == 1
        assert json.loads(line)["subject"] == "alice"
        assert spool.committed_seq == 1
    finally:
        spool.close()


async def test_concurrent_appends_share_group_commits(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.start()
    try:
        receipts = [spool.append(AuditEvent(subject=f"user{number}")) for number in range(2000)]
        await asyncio.gather(*receipts)
        assert [seq for seq, _ in _rows(tmp_path)] == list(range(1, 2001))
        assert spool.commits < 100  # 2000 events queued at once are not 2000 transactions
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
        lines = [json.loads(line) for _, line in _rows(tmp_path)]
        assert [line["seq"] for line in lines] == [1, 2, 3, 4]
        assert lines[3]["prev_hash"] == lines[2]["hash"]
    finally:
        second.close()


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


def test_events_appended_before_start_are_committed_on_close(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    receipt = spool.append(AuditEvent(subject="early"))
    spool.close()
    assert isinstance(receipt, ThreadReceipt)
    assert receipt.wait(0)
    assert [json.loads(line)["subject"] for _, line in _rows(tmp_path)] == ["early"]


def test_fsync_zero_makes_every_commit_synchronous(tmp_path: Path) -> None:
    full, normal = Spool(tmp_path / "full", fsync_ms=0), Spool(tmp_path / "normal", fsync_ms=100)
    try:
        assert full._writer.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert normal._writer.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        full.close()
        normal.close()


def test_a_failing_commit_releases_requests_and_retries_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    spool.start()
    try:
        first = spool.append(AuditEvent(subject="one"))
        assert isinstance(first, ThreadReceipt)
        assert first.wait(10)
        saboteur = sqlite3.connect(tmp_path / "slot-0.db", isolation_level=None)
        schema = saboteur.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
        saboteur.execute("ALTER TABLE events RENAME TO events_gone")  # every insert now fails
        second = spool.append(AuditEvent(subject="two"))
        assert isinstance(second, ThreadReceipt)
        assert second.wait(10)  # released although not stored: an audit failure does not stop requests
        assert spool.commit_errors >= 1
        assert "commit of 1 events failed (attempt 1)" in caplog.text
        saboteur.execute(schema)  # writable again
        deadline = time.monotonic() + 10
        while spool.committed_seq < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        saboteur.close()
        assert [json.loads(line)["subject"] for _, line in _rows(tmp_path)] == ["two"]
        assert spool.committed_seq == 2
    finally:
        spool.close()


def test_delivered_events_are_pruned_down_to_the_retention(tmp_path: Path) -> None:
    spool = Spool(tmp_path, retain_events=5)
    assert spool.cursor("sink-a") == 0
    spool.start()
    try:
        receipts = [spool.append(AuditEvent()) for _ in range(20)]
        for receipt in receipts:
            assert isinstance(receipt, ThreadReceipt)
            assert receipt.wait(10)
        spool.mark_delivered("sink-a", 18)
        deadline = time.monotonic() + 10
        while len(_rows(tmp_path)) > 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [seq for seq, _ in _rows(tmp_path)] == list(range(14, 21))  # 18 - 5 + 1 .. 20
    finally:
        spool.close()
    [head] = read_heads(tmp_path)
    assert (head.seq, head.cursors) == (20, {"sink-a": 18})


def test_a_new_sink_starts_with_the_oldest_event_still_held(tmp_path: Path) -> None:
    spool = Spool(tmp_path, retain_events=0)
    spool.cursor("old")
    spool.start()
    receipts = [spool.append(AuditEvent()) for _ in range(10)]
    for receipt in receipts:
        assert isinstance(receipt, ThreadReceipt)
        assert receipt.wait(10)
    spool.mark_delivered("old", 6)
    deadline = time.monotonic() + 10
    while _rows(tmp_path)[0][0] != 7 and time.monotonic() < deadline:
        time.sleep(0.05)
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
    lines = [json.loads(line) for _, line in _rows(tmp_path)]
    assert [line["seq"] for line in lines] == list(range(1, 2001))
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(lines))
