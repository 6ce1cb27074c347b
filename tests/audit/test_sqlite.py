"""SqliteAuditSink: every field survives, retries never duplicate, every query filter works."""

from __future__ import annotations

import dataclasses
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.audit.helpers import Sealer

from bastion.audit.event import AuditEvent
from bastion.audit.sink import AuditQuery
from bastion.audit.sqlite import SqliteAuditSink
from bastion.errors import ConfigError


@pytest.fixture
def seal() -> Sealer:
    return Sealer()


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SqliteAuditSink]:
    sink = SqliteAuditSink(tmp_path / "audit" / "audit.db")
    yield sink
    sink.close()


def _full_event() -> AuditEvent:
    return AuditEvent(
        event_id="e" * 32,
        time=datetime(2026, 11, 21, 9, 30, 15, 123456, tzinfo=UTC),
        request_id="req-1",
        subject="alice",
        groups=["eng", "ops"],
        auth_method="api_key",
        credential_id="0123456789ab",
        client="claude-code/2.1",
        source_ip="10.0.0.7",
        user_agent="claude-code/2.1 (linux)",
        tool="get_file_contents",
        repo="acme/api",
        ref="refs/heads/main",
        resolved_sha="0123456789abcdef0123456789abcdef01234567",
        paths=["src/app.py", "README.md"],
        bytes_returned=4096,
        decision="allow",
        reason="rule 'eng reads acme/*' allows",
        rule="eng reads acme/*",
        duration_ms=12.75,
        outcome="ok",
        metadata={"truncated": True, "redactions": 2, "nested": {"lines": [1, 20]}},
    )


def _events(count: int, **fields: object) -> list[AuditEvent]:
    return [AuditEvent.model_validate({"tool": "list_repositories", **fields}) for _ in range(count)]


def test_every_field_survives_a_round_trip(sink: SqliteAuditSink, seal: Sealer) -> None:
    event = _full_event()
    [sealed] = seal([event])
    sink.write([sealed])
    [(position, stored)] = sink.query(AuditQuery())
    assert position == 1
    chain_fields = {"instance_id", "seq", "prev_hash", "hash"}
    assert stored.model_dump(exclude=chain_fields) == event.model_dump(exclude=chain_fields)
    assert (stored.instance_id, stored.seq, stored.prev_hash, stored.hash) == (
        "test0instance000",
        1,
        None,
        sealed.hash,
    )
    assert [line.line for line in sink.scan()] == [sealed.line]  # stored verbatim, so it can be verified


def test_the_file_is_private_and_in_wal_mode(tmp_path: Path, sink: SqliteAuditSink, seal: Sealer) -> None:
    sink.write(seal(_events(1)))
    assert stat.S_IMODE(sink.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(sink.path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(sink.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_retried_batch_is_stored_once(sink: SqliteAuditSink, seal: Sealer) -> None:
    batch = _events(5, subject="alice")
    sealed = seal(batch)
    sink.write(sealed)
    sink.write(sealed)  # the pipeline retries a batch whose commit it could not confirm
    extra = _events(2, subject="bob")
    sink.write([*sealed[3:], *seal(extra)])  # overlapping retry with new events
    stored = sink.query(AuditQuery(limit=100))
    assert [event.event_id for _, event in stored] == [event.event_id for event in [*batch, *extra]]
    positions = [position for position, _ in stored]
    assert positions == sorted(set(positions))  # strictly increasing (skipped duplicates may leave gaps)


def test_a_failed_batch_leaves_nothing_behind(sink: SqliteAuditSink, seal: Sealer) -> None:
    good = _events(3)
    sink.write(seal(good))
    # The second event breaks a NOT NULL column half-way through the batch: the first must not stay behind.
    first, second = seal([AuditEvent(subject="half-way"), AuditEvent()])
    broken = dataclasses.replace(second, decision=None)  # pyright: ignore[reportArgumentType]
    with pytest.raises(sqlite3.IntegrityError):
        sink.write([first, broken])
    assert [event.event_id for _, event in sink.query(AuditQuery())] == [event.event_id for event in good]
    sink.write([first])  # and the sink is still usable
    assert sink.query(AuditQuery())[-1][1].subject == "half-way"


def test_query_filters_each_column(sink: SqliteAuditSink, seal: Sealer) -> None:
    now = datetime.now(UTC)
    sink.write(
        seal(
            [
                AuditEvent(subject="alice", repo="acme/api", tool="get_file_contents", decision="allow", time=now),
                AuditEvent(
                    subject="bob", repo="acme/api", tool="search_code", decision="deny", outcome="denied", time=now
                ),
                AuditEvent(subject="alice", repo="acme/web", tool="search_code", decision="allow", time=now),
                AuditEvent(subject="carol", decision="none", outcome="unauthenticated", time=now - timedelta(days=3)),
            ]
        )
    )

    def subjects(query: AuditQuery) -> list[str | None]:
        return [event.subject for _, event in sink.query(query)]

    assert subjects(AuditQuery(subject="alice")) == ["alice", "alice"]
    assert subjects(AuditQuery(repo="acme/api")) == ["alice", "bob"]
    assert subjects(AuditQuery(decision="deny")) == ["bob"]
    assert subjects(AuditQuery(decision="none")) == ["carol"]
    assert subjects(AuditQuery(tool="search_code")) == ["bob", "alice"]
    assert subjects(AuditQuery(since=now - timedelta(hours=1))) == ["alice", "bob", "alice"]
    assert subjects(AuditQuery(since=now - timedelta(days=4))) == ["alice", "bob", "alice", "carol"]
    assert subjects(AuditQuery(subject="alice", tool="search_code", repo="acme/web", decision="allow")) == ["alice"]
    assert subjects(AuditQuery(subject="alice", decision="deny")) == []
    assert subjects(AuditQuery(subject="nobody")) == []


def test_limit_keeps_the_newest_and_returns_them_oldest_first(sink: SqliteAuditSink, seal: Sealer) -> None:
    sink.write(seal([AuditEvent(subject=f"user{number}") for number in range(10)]))
    rows = sink.query(AuditQuery(limit=3))
    assert [position for position, _ in rows] == [8, 9, 10]
    assert [event.subject for _, event in rows] == ["user7", "user8", "user9"]
    assert sink.query(AuditQuery(limit=0)) == []


def test_after_id_pages_forward_without_gaps(sink: SqliteAuditSink, seal: Sealer) -> None:
    sink.write(seal([AuditEvent(subject=f"user{number}") for number in range(10)]))
    seen: list[int] = []
    last = 0
    while rows := sink.query(AuditQuery(after_id=last, limit=4)):
        seen.extend(position for position, _ in rows)
        last = rows[-1][0]
    assert seen == list(range(1, 11))
    assert sink.query(AuditQuery(after_id=10)) == []
    sink.write(seal([AuditEvent(subject="late", decision="deny"), AuditEvent(subject="later")]))
    assert [(position, event.subject) for position, event in sink.query(AuditQuery(after_id=10))] == [
        (11, "late"),
        (12, "later"),
    ]
    assert [event.subject for _, event in sink.query(AuditQuery(after_id=10, decision="deny"))] == ["late"]


def test_a_second_reader_sees_what_the_writer_commits(sink: SqliteAuditSink, seal: Sealer) -> None:
    reader = SqliteAuditSink(sink.path)
    try:
        assert reader.query(AuditQuery()) == []
        sink.write(seal(_events(3, subject="alice")))
        assert [event.subject for _, event in reader.query(AuditQuery())] == ["alice"] * 3
    finally:
        reader.close()


def test_a_reader_in_another_process_after_a_sync_does_not_cut_the_writer_off(
    sink: SqliteAuditSink, seal: Sealer
) -> None:
    """`sync` fsyncs through descriptors of the database files. Closing one dropped this process's SQLite locks, so
    the next process to close a connection (`bastion audit tail`) took itself for the last user, checkpointed and
    deleted the WAL: the server went on writing to the deleted file, and no other process saw its events again."""
    count = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(c.execute('select count(*) from audit_events').fetchone()[0]); c.close()"
    )

    def seen_by_another_process() -> int:
        done = subprocess.run([sys.executable, "-c", count, str(sink.path)], capture_output=True, text=True, check=True)
        return int(done.stdout)

    sink.write(seal(_events(2)))
    sink.sync()
    assert seen_by_another_process() == 2
    sink.sync()
    assert seen_by_another_process() == 2
    assert Path(f"{sink.path}-wal").exists()  # still the live writer's
    sink.write(seal(_events(3)))
    assert seen_by_another_process() == 5


def test_a_database_from_a_newer_bastion_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 7")
    connection.close()
    with pytest.raises(ConfigError) as raised:
        SqliteAuditSink(path)
    assert raised.value.message == (
        f"the audit database {path} has schema version 7, newer than this bastion understands (2); upgrade bastion"
    )


def test_scan_pages_in_storage_order_and_filters_by_time(sink: SqliteAuditSink, seal: Sealer) -> None:
    now = datetime.now(UTC)
    old = seal([AuditEvent(subject="old", time=now - timedelta(days=2))])
    new = seal([AuditEvent(subject=f"new{number}", time=now) for number in range(12_000)])
    sink.write(old)
    sink.write(new)
    lines = list(sink.scan())
    assert [stored.position for stored in lines] == list(range(1, 12_002))
    assert [stored.line for stored in lines] == [event.line for event in [*old, *new]]
    assert len(list(sink.scan(since=now - timedelta(hours=1)))) == 12_000


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path, seal: Sealer) -> None:
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as connection:  # the schema as the first release created it
        connection.executescript(
            """
            CREATE TABLE audit_events (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,
                time TEXT NOT NULL, subject TEXT, repo TEXT, decision TEXT NOT NULL, tool TEXT, outcome TEXT NOT NULL,
                event TEXT NOT NULL);
            INSERT INTO audit_events (event_id, time, decision, outcome, event)
                VALUES ('old', '2026-01-01T00:00:00.000000Z', 'allow', 'ok', '{"event_id":"old","subject":"before"}');
            PRAGMA user_version = 1;
            """
        )
    connection.close()
    sink = SqliteAuditSink(path)
    try:
        sink.write(seal([AuditEvent(subject="after")]))
        assert [event.subject for _, event in sink.query(AuditQuery())] == ["before", "after"]
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA user_version").fetchone() == (2,)
            assert connection.execute("SELECT seq FROM audit_events ORDER BY id").fetchall() == [(None,), (1,)]
        connection.close()
    finally:
        sink.close()
