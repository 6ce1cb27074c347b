"""CloudWatchAuditSink against a real moto_server: one stream per instance, limits, no duplicates after a failure."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from tests.audit.helpers import Sealer
from tests.support.moto import MotoServer

from bastion.audit.cloudwatch import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, CloudWatchAuditSink, plan_batches
from bastion.audit.event import AuditEvent
from bastion.audit.sink import AuditQuery
from bastion.audit.verify import verify_lines
from bastion.errors import InvalidInput


def _client(moto: MotoServer) -> Any:
    return boto3.client("logs", endpoint_url=moto.endpoint_url)


def _group(moto: MotoServer) -> str:
    name = f"/mcp-bastion/test/{uuid.uuid4().hex[:8]}"
    _client(moto).create_log_group(logGroupName=name)
    return name


def _messages(moto: MotoServer, group: str, stream: str) -> list[dict[str, Any]]:
    events = _client(moto).get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    return [json.loads(event["message"]) for event in events]


def _events(count: int, prefix: str = "user") -> list[AuditEvent]:
    return [AuditEvent(subject=f"{prefix}{number}") for number in range(count)]


def test_each_instance_writes_its_chain_to_its_own_stream(moto: MotoServer) -> None:
    group = _group(moto)
    sink = CloudWatchAuditSink(group, stream_prefix="host-a-", endpoint_url=moto.endpoint_url)
    first, second = Sealer("instance0000000a"), Sealer("instance0000000b")
    sink.write(first(_events(3)))
    sink.write(second(_events(2)))
    sink.write(first(_events(1, "late")))
    assert sink.streams() == ["host-a-instance0000000a", "host-a-instance0000000b"]
    stored = _messages(moto, group, "host-a-instance0000000a")
    assert [(item["seq"], item["subject"]) for item in stored] == [
        (1, "user0"),
        (2, "user1"),
        (3, "user2"),
        (4, "late0"),
    ]
    report = verify_lines("cloudwatch", sink.scan())
    assert report.ok, [problem.render() for problem in report.problems]
    assert report.records == 6
    sink.close()


def test_a_batch_sent_again_after_an_ambiguous_failure_is_not_stored_twice(moto: MotoServer) -> None:
    group = _group(moto)
    seal = Sealer()
    batch = seal(_events(5))
    CloudWatchAuditSink(group, stream_prefix="p-", endpoint_url=moto.endpoint_url).write(batch)
    # The process crashed before learning the call succeeded: a new sink gets the same events again, and more.
    restarted = CloudWatchAuditSink(group, stream_prefix="p-", endpoint_url=moto.endpoint_url)
    restarted.write([*batch[3:], *seal(_events(2, "new"))])
    assert [item["seq"] for item in _messages(moto, group, f"p-{batch[0].instance_id}")] == [1, 2, 3, 4, 5, 6, 7]


def test_writes_fail_while_cloudwatch_is_down_and_resume_without_duplicates(moto: MotoServer) -> None:
    group = _group(moto)
    sink = CloudWatchAuditSink(group, stream_prefix="p-", endpoint_url=moto.endpoint_url)
    seal = Sealer()
    sink.write(seal(_events(2)))
    pending = seal(_events(3, "during"))
    moto.stop()
    try:
        with pytest.raises(Exception, match=r"Connection was closed|Could not connect"):
            sink.write(pending)
    finally:
        moto.restart()
    sink.write(pending)  # the pipeline's retry
    assert [item["seq"] for item in _messages(moto, group, f"p-{pending[0].instance_id}")] == [1, 2, 3, 4, 5]


def test_a_missing_log_group_is_explained_or_created(moto: MotoServer) -> None:
    group = f"/mcp-bastion/missing/{uuid.uuid4().hex[:8]}"
    strict = CloudWatchAuditSink(group, endpoint_url=moto.endpoint_url)
    with pytest.raises(RuntimeError, match=r"CloudWatch log group '/mcp-bastion/missing/.*' does not exist: create it"):
        strict.write(Sealer()(_events(1)))
    creating = CloudWatchAuditSink(group, stream_prefix="p-", endpoint_url=moto.endpoint_url, create_log_group=True)
    sealed = Sealer()(_events(1))
    creating.write(sealed)
    assert [item["event_id"] for item in _messages(moto, group, f"p-{sealed[0].instance_id}")] == [sealed[0].event_id]


def test_query_and_scan_read_back_what_was_written(moto: MotoServer) -> None:
    group = _group(moto)
    sink = CloudWatchAuditSink(group, stream_prefix="p-", endpoint_url=moto.endpoint_url)
    now = datetime.now(UTC)
    sink.write(
        Sealer()(
            [
                AuditEvent(subject="alice", decision="allow", time=now - timedelta(minutes=5)),
                AuditEvent(subject="bob", decision="deny", outcome="denied", time=now - timedelta(minutes=4)),
                AuditEvent(subject="alice", decision="allow", time=now - timedelta(minutes=3)),
            ]
        )
    )
    assert [event.subject for _, event in sink.query(AuditQuery(subject="alice"))] == ["alice", "alice"]
    assert [event.subject for _, event in sink.query(AuditQuery(limit=1))] == ["alice"]
    assert [event.subject for _, event in sink.query(AuditQuery(decision="deny"))] == ["bob"]
    assert len(list(sink.scan(since=now - timedelta(minutes=4, seconds=1)))) == 2
    with pytest.raises(InvalidInput, match="for CloudWatch use `aws logs tail --follow`"):
        sink.query(AuditQuery(after_id=1))


def test_batches_respect_count_size_span_and_time_order() -> None:
    seal = Sealer()
    base = datetime(2026, 11, 1, tzinfo=UTC)
    # Tiny messages, so the count limit bites before the size limit does.
    many = [dataclasses.replace(event, line="{}") for event in seal([AuditEvent(time=base)] * (MAX_BATCH_EVENTS + 5))]
    assert [len(batch) for batch in plan_batches(many, 0)] == [MAX_BATCH_EVENTS, 5]
    real = seal([AuditEvent(time=base) for _ in range(5000)])  # ~600 bytes each: the size limit bites
    assert all(sum(len(item.message) + 26 for item in batch) <= MAX_BATCH_BYTES for batch in plan_batches(real, 0))

    big = seal([AuditEvent(time=base, reason="x" * 100_000) for _ in range(25)])
    batches = plan_batches(big, 0)
    assert all(sum(len(item.message.encode()) + 26 for item in batch) <= MAX_BATCH_BYTES for batch in batches)
    assert sum(len(batch) for batch in batches) == 25
    assert len(batches) == 3  # ten ~100 KB events fit in 1 MiB

    spread = seal([AuditEvent(time=base), AuditEvent(time=base + timedelta(hours=25))])
    assert [len(batch) for batch in plan_batches(spread, 0)] == [1, 1]

    # A later seq never gets an earlier timestamp (CloudWatch requires time order within a call).
    skewed = seal([AuditEvent(time=base + timedelta(seconds=2)), AuditEvent(time=base + timedelta(seconds=1))])
    [batch] = plan_batches(skewed, 0)
    assert batch[0].timestamp == batch[1].timestamp
    [after_stored] = plan_batches(seal([AuditEvent(time=base)]), int((base + timedelta(seconds=9)).timestamp() * 1000))
    assert after_stored[0].timestamp == int((base + timedelta(seconds=9)).timestamp() * 1000)


def test_an_oversize_event_becomes_a_stub_that_verify_reports() -> None:
    [sealed] = Sealer()([AuditEvent(reason="x" * 300_000)])
    [[item]] = plan_batches([sealed], 0)
    stub = json.loads(item.message)
    assert stub == {
        "event_id": sealed.event_id,
        "hash": sealed.hash,
        "instance_id": sealed.instance_id,
        "oversize_stub": True,
        "seq": 1,
        "time": sealed.time.isoformat(),
    }
