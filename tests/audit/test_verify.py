"""`verify` finds every kind of tampering in a real SQLite file and a real PostgreSQL table: an edited record,
a deleted one, an inserted one, a reordering, a re-hashed edit, a truncated end; and passes an intact log."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.audit.helpers import Sealer

from bastion.audit.chain import Chain, document_hash
from bastion.audit.event import AuditEvent
from bastion.audit.postgres import PostgresAuditSink
from bastion.audit.sink import QueryableSink, SealedEvent
from bastion.audit.spool import SpoolHead
from bastion.audit.sqlite import SqliteAuditSink
from bastion.audit.verify import VerifyReport, verify_lines

INSTANCE = "test0instance000"
Execute = Callable[[str, dict[str, Any]], list[Any]]


class Store:
    """A sink holding ten sealed events, and raw SQL on its table (what someone with database access can do)."""

    def __init__(self, name: str, sink: QueryableSink, execute: Execute, sealed: list[SealedEvent]) -> None:
        self.name = name
        self.sink = sink
        self.execute = execute
        self.sealed = sealed

    def verify(self, heads: list[SpoolHead] | None = None, key: bytes | None = None) -> VerifyReport:
        return verify_lines(self.name, self.sink.scan(), key=key, heads=heads or [])

    def line(self, seq: int) -> str:
        return self.execute("SELECT event FROM audit_events WHERE seq = :seq", {"seq": seq})[0][0]


def _ten(sink: QueryableSink) -> list[SealedEvent]:
    sealed = Sealer(INSTANCE)(
        [AuditEvent(subject=f"user{number}", tool="get_file_contents") for number in range(1, 11)]
    )
    sink.write(sealed)
    return sealed


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Generator[Store]:
    if request.param == "sqlite":
        sink = SqliteAuditSink(tmp_path / "audit.db")
        connection = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)

        def execute_sqlite(sql: str, parameters: dict[str, Any]) -> list[Any]:
            return connection.execute(sql, parameters).fetchall()

        try:
            yield Store("sqlite", sink, execute_sqlite, _ten(sink))
        finally:
            connection.close()
            sink.close()
    else:
        url: str = request.getfixturevalue("postgres_url")
        pg_sink = PostgresAuditSink(url)
        sealed = _ten(pg_sink)
        engine = sa.create_engine(url)

        def execute_pg(sql: str, parameters: dict[str, Any]) -> list[Any]:
            with engine.begin() as connection:
                result = connection.execute(sa.text(sql), parameters)
                return list(result) if result.returns_rows else []

        try:
            yield Store("postgresql", pg_sink, execute_pg, sealed)
        finally:
            engine.dispose()
            pg_sink.close()


def _problems(report: VerifyReport) -> list[tuple[str, int | None]]:
    return [(problem.kind, problem.seq) for problem in report.problems]


def test_an_intact_log_verifies(store: Store) -> None:
    report = store.verify()
    assert report.ok, [problem.render() for problem in report.problems]
    assert report.records == 10
    assert [(i.instance_id, i.records, i.first_seq, i.last_seq) for i in report.instances] == [(INSTANCE, 10, 1, 10)]


def test_an_edited_record_is_reported_as_modified(store: Store) -> None:
    edited = store.line(4).replace('"subject":"user4"', '"subject":"mallory"')
    store.execute("UPDATE audit_events SET event = :event WHERE seq = 4", {"event": edited})
    report = store.verify()
    assert _problems(report) == [("modified", 4)]
    assert report.problems[0].detail == "its content does not match its hash"


def test_an_edit_with_a_recomputed_hash_breaks_the_chain(store: Store) -> None:
    document = json.loads(store.line(3))
    document.pop("hash")
    document["subject"] = "mallory"
    document["hash"] = document_hash(document, None)  # the attacker knows the algorithm (no HMAC key)
    forged = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    store.execute("UPDATE audit_events SET event = :event WHERE seq = 3", {"event": forged})
    report = store.verify()
    assert _problems(report) == [("modified", 3)]
    assert "the chain breaks after it: seq 4's prev_hash is not its hash" in report.problems[0].detail


def test_a_deleted_record_is_reported_as_a_gap(store: Store) -> None:
    store.execute("DELETE FROM audit_events WHERE seq IN (5, 6)", {})
    report = store.verify()
    assert _problems(report) == [("deleted", 5)]
    assert report.problems[0].render() == (
        f"deleted     instance {INSTANCE}, seq 5: seq 5-6 missing between seq 4 and 7"
    )


def test_deleting_the_first_records_is_reported(store: Store) -> None:
    store.execute("DELETE FROM audit_events WHERE seq = 1", {})
    assert [problem.detail for problem in store.verify().problems] == ["seq 1 missing before the first stored record"]


def test_deleting_the_last_records_is_caught_by_the_spools_head(store: Store) -> None:
    last = store.sealed[-1]
    store.execute("DELETE FROM audit_events WHERE seq >= 9", {})
    assert store.verify().ok  # nothing inside the sink can tell...
    head = SpoolHead(Path("slot-0.db"), INSTANCE, 10, last.hash, {store.name: 10})
    report = store.verify(heads=[head])  # ...but the spool knows the sink had stored up to seq 10
    assert _problems(report) == [("deleted", 9)]
    assert (
        report.problems[0].detail
        == "seq 9-10 missing at the end (the spool slot-0.db says this sink stored up to seq 10)"
    )


def test_deleting_every_record_of_an_instance_is_caught_by_the_spools_head(store: Store) -> None:
    """Nothing of the instance is left in the sink to check: only the spool can say it was there (found by a
    probe: a whole worker's trail deleted, or the sink emptied, verified OK)."""
    last = store.sealed[-1]
    store.execute("DELETE FROM audit_events", {})
    head = SpoolHead(Path("slot-1.db"), INSTANCE, 10, last.hash, {store.name: 10})
    report = store.verify(heads=[head])
    assert _problems(report) == [("deleted", 1)]
    assert report.problems[0].detail == (
        "seq 1-10 missing: the sink holds no record of this instance, and the spool slot-1.db says it stored up to "
        "seq 10"
    )
    assert store.verify(heads=[SpoolHead(Path("slot-1.db"), INSTANCE, 10, last.hash, {})]).ok  # never delivered


def test_editing_a_column_searches_filter_on_is_reported(store: Store) -> None:
    """The sealed line intact, only the copy `audit search` filters on changed: the record vanished from searches
    for its subject and showed under another, and verify said OK (found by a probe)."""
    store.execute("UPDATE audit_events SET subject = :subject WHERE seq = 6", {"subject": "bob"})
    report = store.verify()
    assert _problems(report) == [("modified", 6)]
    assert report.problems[0].detail == (
        "its subject column says 'bob', its sealed line 'user6': searches would not find it where it belongs"
    )


def test_an_inserted_record_is_reported(store: Store) -> None:
    document = json.loads(store.line(6))
    document.pop("hash")
    document.update(event_id="f" * 32, subject="ghost")
    document["hash"] = document_hash(document, None)
    forged = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    store.execute(
        "INSERT INTO audit_events (event_id, time, subject, decision, outcome, instance_id, seq, event) "
        "VALUES (:event_id, :time, 'ghost', 'none', 'ok', :instance, 6, :event)",
        {"event_id": "f" * 32, "time": store.sealed[5].time, "instance": INSTANCE, "event": forged},
    )
    report = store.verify()
    assert _problems(report) == [("inserted", 6)]
    assert report.problems[0].detail.startswith("a second record for seq 6 that is not part of the chain")
    assert report.problems[0].position == 11  # the forged row, not the genuine one


def test_an_inserted_record_without_chain_fields_is_reported(store: Store) -> None:
    plain = AuditEvent(event_id="a" * 32, subject="ghost").model_dump_json()
    store.execute(
        "INSERT INTO audit_events (event_id, time, subject, decision, outcome, event) "
        "VALUES (:event_id, :time, 'ghost', 'none', 'ok', :event)",
        {"event_id": "a" * 32, "time": store.sealed[0].time, "event": plain},
    )
    report = store.verify()
    assert [(problem.kind, problem.position) for problem in report.problems] == [("inserted", 11)]
    assert "has no chain fields" in report.problems[0].detail


_NAMES = ("event", "event_id", "time", "subject", "repo", "decision", "tool", "outcome", "instance_id", "seq")
_SELECT_ROW = (
    "SELECT event, event_id, time, subject, repo, decision, tool, outcome, instance_id, seq FROM audit_events "
    "WHERE seq = :seq"
)
_UPDATE_ROW = (
    "UPDATE audit_events SET event = :event, event_id = :event_id, time = :time, subject = :subject, repo = :repo, "
    "decision = :decision, tool = :tool, outcome = :outcome, instance_id = :instance_id, seq = :seq WHERE id = :id"
)


def _swap_rows(store: Store, first: int, second: int) -> None:
    """Exchange everything two rows hold but their storage position (what an attacker reordering rows does)."""
    rows = {seq: dict(zip(_NAMES, store.execute(_SELECT_ROW, {"seq": seq})[0], strict=True)) for seq in (first, second)}
    ids = {seq: store.execute("SELECT id FROM audit_events WHERE seq = :seq", {"seq": seq})[0][0] for seq in rows}
    store.execute("UPDATE audit_events SET event_id = :tmp WHERE id = :id", {"tmp": "swap", "id": ids[first]})
    store.execute(_UPDATE_ROW, {**rows[first], "id": ids[second]})
    store.execute(_UPDATE_ROW, {**rows[second], "id": ids[first]})


def test_reordered_records_are_reported(store: Store) -> None:
    # Swap the stored contents of two rows: each row is intact, but seq 8 is now stored before seq 7.
    _swap_rows(store, 7, 8)
    report = store.verify()
    assert _problems(report) == [("reordered", 7)]
    assert report.problems[0].detail == "stored after seq 8"


def test_a_log_sealed_with_an_hmac_key_needs_the_key(tmp_path: Path) -> None:
    key = b"k" * 32
    sink = SqliteAuditSink(tmp_path / "audit.db")
    try:
        sink.write(Sealer(INSTANCE, key=key)([AuditEvent(subject="alice"), AuditEvent(subject="bob")]))
        assert verify_lines("sqlite", sink.scan(), key=key).ok
        unkeyed = verify_lines("sqlite", sink.scan())
        assert [problem.kind for problem in unkeyed.problems] == ["unverifiable"]
        wrong = verify_lines("sqlite", sink.scan(), key=b"w" * 32)
        assert _problems(wrong) == [("modified", 1), ("modified", 2)]
    finally:
        sink.close()


def _resealed_without_the_key(line: str, prev_hash: str | None, **changes: Any) -> str:
    """What a sink writer without the key can do: edit a record and seal it with plain SHA-256."""
    document = json.loads(line)
    document.pop("hash")
    document.update(changes, prev_hash=prev_hash)
    document["hash"] = document_hash(document, None)
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_with_the_key_a_record_resealed_with_plain_sha256_is_a_downgrade(tmp_path: Path) -> None:
    """Without this check, anyone who can write a sink could rewrite an HMAC chain from any record to the end
    with plain SHA-256 hashes, and verify would accept the forgery even though the key is configured."""
    key = b"k" * 32
    sink = SqliteAuditSink(tmp_path / "audit.db")
    connection = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    try:
        sink.write(Sealer(INSTANCE, key=key)([AuditEvent(subject=f"user{n}") for n in range(1, 5)]))
        lines = {seq: line for seq, line in connection.execute("SELECT seq, event FROM audit_events")}
        three = _resealed_without_the_key(lines[3], json.loads(lines[2])["hash"], subject="forged")
        four = _resealed_without_the_key(lines[4], json.loads(three)["hash"], subject="forged")
        for seq, forged in ((3, three), (4, four)):  # the line and the column searches filter on
            connection.execute("UPDATE audit_events SET event = ?, subject = ? WHERE seq = ?", (forged, "forged", seq))
        # Without the key nothing is wrong but the keyed records it cannot check: the forged tail links up.
        assert [problem.kind for problem in verify_lines("sqlite", sink.scan()).problems] == ["unverifiable"]
        for named in ((), (INSTANCE,)):  # a downgrade after a keyed record is never explained by an upgrade
            report = verify_lines("sqlite", sink.scan(), key=key, plain_instances=named)
            assert _problems(report) == [("modified", 3)]
            assert report.problems[0].detail == (
                "2 record(s) in seq 3-4 sealed with plain SHA-256 after seq 1, which claims the HMAC key: "
                "re-sealed by someone without the key"
            )
    finally:
        connection.close()
        sink.close()


def test_with_the_key_plain_records_pass_only_before_a_keyed_one_or_in_a_named_instance(tmp_path: Path) -> None:
    """A deployment that turned the key on: an instance that was running carries on from its plain records (the
    first keyed record's HMAC covers the link to them); one that stopped before has plain records only, which
    anyone could have written (a made-up instance, or a keyed instance rewritten), so it must be named."""
    key = b"k" * 32
    sink = SqliteAuditSink(tmp_path / "audit.db")
    try:
        before = Sealer(INSTANCE)
        sink.write(before([AuditEvent(subject="alice"), AuditEvent(subject="bob")]))
        after = Chain(INSTANCE, before.chain.seq, before.chain.head_hash, key=key)  # the restart with the key
        sink.write([after.seal(AuditEvent(subject="carol"))])
        assert verify_lines("sqlite", sink.scan(), key=key).ok
        sink.write(Sealer("older0instance00")([AuditEvent(subject="dave")]))
        report = verify_lines("sqlite", sink.scan(), key=key)
        assert [(p.kind, p.instance_id, p.seq) for p in report.problems] == [("unverifiable", "older0instance00", 1)]
        assert report.problems[0].detail.startswith(
            "none of its 1 record(s) is sealed with the HMAC key that is configured, so anyone could have made them"
        )
        assert verify_lines("sqlite", sink.scan(), key=key, plain_instances={"older0instance00"}).ok
    finally:
        sink.close()


def test_with_the_key_cutting_the_keyed_tail_off_leaves_an_instance_that_must_be_named(tmp_path: Path) -> None:
    key = b"k" * 32
    sink = SqliteAuditSink(tmp_path / "audit.db")
    connection = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    try:
        before = Sealer(INSTANCE)
        sink.write(before([AuditEvent(subject="alice"), AuditEvent(subject="bob")]))
        after = Chain(INSTANCE, before.chain.seq, before.chain.head_hash, key=key)
        sink.write([after.seal(AuditEvent(subject="carol")), after.seal(AuditEvent(subject="dave"))])
        connection.execute("DELETE FROM audit_events WHERE seq >= 3")
        assert _problems(verify_lines("sqlite", sink.scan(), key=key)) == [("unverifiable", 1)]
    finally:
        connection.close()
        sink.close()
