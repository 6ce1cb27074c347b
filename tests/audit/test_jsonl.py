"""JsonlAuditSink: verbatim lines, rotation, no duplicates after a restart or a torn write, queries by scanning."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.audit.helpers import Sealer

from bastion.audit.event import AuditEvent
from bastion.audit.jsonl import JsonlAuditSink
from bastion.audit.sink import AuditQuery
from bastion.audit.verify import verify_lines


def _events(count: int, prefix: str = "user") -> list[AuditEvent]:
    return [AuditEvent(subject=f"{prefix}{number}", tool="get_file_contents") for number in range(count)]


def test_lines_are_the_sealed_events_verbatim(tmp_path: Path) -> None:
    sink = JsonlAuditSink(tmp_path / "logs" / "audit.jsonl")
    sealed = Sealer()(_events(3))
    sink.write(sealed)
    assert (tmp_path / "logs" / "audit.jsonl").read_text().splitlines() == [event.line for event in sealed]
    assert stat.S_IMODE((tmp_path / "logs" / "audit.jsonl").stat().st_mode) == 0o600
    assert verify_lines("jsonl", sink.scan()).ok


def test_rotation_numbers_files_upwards_and_keeps_the_chain_whole(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    seal = Sealer()
    sink = JsonlAuditSink(path, max_bytes=3_000)
    for number in range(10):
        sink.write(seal(_events(3, prefix=f"batch{number}-")))
    files = sink.files()
    assert [file.name for file in files[:3]] == ["audit.jsonl.000001", "audit.jsonl.000002", "audit.jsonl.000003"]
    assert files[-1] == path
    assert all(file.stat().st_size <= 3_000 for file in files)
    report = verify_lines("jsonl", sink.scan())
    assert report.ok
    assert (report.records, report.instances[0].last_seq) == (30, 30)


def test_keep_deletes_the_oldest_rotated_files(tmp_path: Path) -> None:
    seal = Sealer()
    sink = JsonlAuditSink(tmp_path / "audit.jsonl", max_bytes=2_000, keep=2)
    for number in range(10):
        sink.write(seal(_events(3, prefix=f"b{number}-")))
    rotated = sink.files()[:-1]
    assert len(rotated) == 2
    first_kept = int(rotated[0].name.rsplit(".", 1)[1])
    assert first_kept > 1
    # What is left verifies, except that its beginning is gone: that shows as a gap at the start.
    assert [problem.kind for problem in verify_lines("jsonl", sink.scan()).problems] == ["deleted"]


def test_redelivery_after_a_restart_appends_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    seal = Sealer()
    sealed = seal(_events(5))
    JsonlAuditSink(path).write(sealed)
    restarted = JsonlAuditSink(path)  # knows nothing in memory: it must look at the file
    restarted.write([*sealed[2:], *seal(_events(2, prefix="new"))])
    subjects = [json.loads(line)["subject"] for line in path.read_text().splitlines()]
    assert subjects == ["user0", "user1", "user2", "user3", "user4", "new0", "new1"]


def test_a_line_torn_by_a_crash_is_cut_and_written_again(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sealed = Sealer()(_events(3))
    JsonlAuditSink(path).write(sealed[:2])
    with path.open("ab") as handle:  # the process died half-way through appending the third line
        handle.write(sealed[2].line.encode()[:40])
    restarted = JsonlAuditSink(path)
    assert [stored.line for stored in restarted.scan()] == [sealed[0].line, sealed[1].line]  # partial line unseen
    restarted.write(sealed[2:])
    assert path.read_text().splitlines() == [event.line for event in sealed]


def test_two_instances_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first, second = Sealer("instance0000000a"), Sealer("instance0000000b")
    sink_a, sink_b = JsonlAuditSink(path), JsonlAuditSink(path)
    sink_a.write(first(_events(2, "a")))
    sink_b.write(second(_events(2, "b")))
    sink_a.write(first(_events(1, "a-late")))
    report = verify_lines("jsonl", JsonlAuditSink(path).scan())
    assert report.ok
    assert sorted((item.instance_id, item.records) for item in report.instances) == [
        ("instance0000000a", 3),
        ("instance0000000b", 2),
    ]


def test_query_filters_limits_and_pages_like_the_databases(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    sink = JsonlAuditSink(tmp_path / "audit.jsonl", max_bytes=1_500)
    sink.write(
        Sealer()(
            [
                AuditEvent(subject="old", time=now - timedelta(days=2)),
                *[AuditEvent(subject=f"user{number}", decision="allow", time=now) for number in range(6)],
                AuditEvent(subject="bob", decision="deny", outcome="denied", repo="acme/secrets", time=now),
            ]
        )
    )
    assert [event.subject for _, event in sink.query(AuditQuery(limit=2))] == ["user5", "bob"]
    assert [event.subject for _, event in sink.query(AuditQuery(decision="deny"))] == ["bob"]
    assert [event.subject for _, event in sink.query(AuditQuery(repo="acme/secrets"))] == ["bob"]
    assert len(sink.query(AuditQuery(since=now - timedelta(hours=1)))) == 7
    page = sink.query(AuditQuery(after_id=3, limit=2))
    assert [(position, event.subject) for position, event in page] == [(4, "user2"), (5, "user3")]
