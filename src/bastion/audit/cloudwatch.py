"""The CloudWatch Logs sink: each instance writes its chain to its own log stream, `<prefix><instance_id>`.

PutLogEvents limits respected per call: at most 10,000 events and 1,048,576 bytes (each event's UTF-8 message
plus 26 bytes), timestamps in non-decreasing order spanning less than 24 hours. Timestamps are the events' own
times, raised where needed to the previous one's (a later seq never gets an earlier timestamp), so CloudWatch's
time order is the chain order. An event above CloudWatch's 256 KiB limit is replaced by a stub naming its
instance, seq, event id and hash (`verify` reports it; the full event is in the other sinks).

Retries: botocore's own retries are off for writes (a retried PutLogEvents after a timeout may store the batch
twice); the pipeline retries the batch with backoff and jitter instead. Before the first write, and after any
failed write (which may have reached CloudWatch even though no answer came back), the sink reads the stream's
newest events back and skips every seq already there: re-delivery stores nothing twice.

Needs `logs:CreateLogStream`, `logs:PutLogEvents`, `logs:GetLogEvents` on the group (and `DescribeLogStreams`,
`FilterLogEvents` for `bastion audit tail/search/export/verify --sink cloudwatch`; `CreateLogGroup` only with
`create_log_group`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bastion.audit.event import AuditEvent
from bastion.audit.sink import CANNOT_FOLLOW, AuditQuery, SealedEvent, StoredLine
from bastion.aws.clients import aws_client
from bastion.errors import InvalidInput

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_EVENTS", "CloudWatchAuditSink", "plan_batches"]

logger = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 262_144 - EVENT_OVERHEAD_BYTES
MAX_SPAN_MS = 24 * 3600 * 1000 - 1
READBACK_EVENTS = 50
_STREAM_UNSAFE = re.compile(r"[:*]")


def _timestamp_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _message(event: SealedEvent) -> str:
    if len(event.line.encode("utf-8")) <= MAX_EVENT_BYTES:
        return event.line
    logger.error("audit event %s (seq %d) exceeds CloudWatch's event size: sending a stub", event.event_id, event.seq)
    stub = {
        "event_id": event.event_id,
        "instance_id": event.instance_id,
        "seq": event.seq,
        "hash": event.hash,
        "time": event.time.isoformat(),
        "oversize_stub": True,
    }
    return json.dumps(stub, sort_keys=True, separators=(",", ":"))


@dataclass(slots=True)
class _Planned:
    seq: int
    timestamp: int
    message: str


def plan_batches(events: Sequence[SealedEvent], last_timestamp: int) -> list[list[_Planned]]:
    """Split events (in seq order) into PutLogEvents calls within every limit, timestamps made non-decreasing."""
    batches: list[list[_Planned]] = []
    batch: list[_Planned] = []
    size = 0
    for event in events:
        message = _message(event)
        cost = len(message.encode("utf-8")) + EVENT_OVERHEAD_BYTES
        timestamp = max(_timestamp_ms(event.time), last_timestamp)
        last_timestamp = timestamp
        if batch and (
            len(batch) >= MAX_BATCH_EVENTS
            or size + cost > MAX_BATCH_BYTES
            or timestamp - batch[0].timestamp > MAX_SPAN_MS
        ):
            batches.append(batch)
            batch, size = [], 0
        batch.append(_Planned(event.seq, timestamp, message))
        size += cost
    if batch:
        batches.append(batch)
    return batches


@dataclass(slots=True)
class _Stream:
    name: str
    last_seq: int = 0
    last_timestamp: int = 0
    confirmed: bool = False  # False: read the stream back before the next write


def _default_prefix() -> str:
    return _STREAM_UNSAFE.sub("-", socket.gethostname()) + "-"


class CloudWatchAuditSink:
    """Implements `QueryableSink` (reads use GetLogEvents / DescribeLogStreams; no `tail -f`)."""

    follows = False

    def __init__(
        self,
        log_group: str,
        *,
        stream_prefix: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        create_log_group: bool = False,
        name: str = "cloudwatch",
    ) -> None:
        self.name = name
        self.log_group = log_group
        self.stream_prefix = _STREAM_UNSAFE.sub("-", stream_prefix) if stream_prefix is not None else _default_prefix()
        self.region = region
        self.endpoint_url = endpoint_url
        self.create_log_group = create_log_group
        self._client: Any = None
        self._streams: dict[str, _Stream] = {}

    def stream_name(self, instance_id: str) -> str:
        return f"{self.stream_prefix}{instance_id}"

    @property
    def client(self) -> Any:
        # Built on first use, in the delivery thread: creating a boto3 client takes tens of milliseconds.
        if self._client is None:
            self._client = aws_client(
                "logs",
                region=self.region,
                endpoint_url=self.endpoint_url,
                attempts=1,
                connect_timeout=3,
                read_timeout=15,
                user_agent="mcp-bastion-audit",
            )
        return self._client

    # -- writing ------------------------------------------------------------------------------------------------

    def write(self, events: Sequence[SealedEvent]) -> None:
        by_instance: dict[str, list[SealedEvent]] = {}
        for event in events:
            by_instance.setdefault(event.instance_id, []).append(event)
        for instance_id, mine in by_instance.items():
            self._write_stream(self._stream(instance_id), mine)

    def _stream(self, instance_id: str) -> _Stream:
        stream = self._streams.get(instance_id)
        if stream is None:
            stream = self._streams[instance_id] = _Stream(self.stream_name(instance_id))
        if not stream.confirmed:
            self._ensure_stream(stream.name)
            stream.last_seq, stream.last_timestamp = self._read_back(stream.name, instance_id)
            stream.confirmed = True
        return stream

    def _write_stream(self, stream: _Stream, events: Sequence[SealedEvent]) -> None:
        fresh = [event for event in events if event.seq > stream.last_seq]
        for batch in plan_batches(fresh, stream.last_timestamp):
            try:
                answer = self.client.put_log_events(
                    logGroupName=self.log_group,
                    logStreamName=stream.name,
                    logEvents=[{"timestamp": item.timestamp, "message": item.message} for item in batch],
                )
            except Exception:
                stream.confirmed = False  # it may have arrived: read back before sending again
                raise
            self._report_rejected(stream.name, batch, answer.get("rejectedLogEventsInfo") or {})
            stream.last_seq, stream.last_timestamp = batch[-1].seq, batch[-1].timestamp

    @staticmethod
    def _report_rejected(stream: str, batch: list[_Planned], rejected: dict[str, int]) -> None:
        if not rejected:
            return
        # CloudWatch refuses events older than 14 days (or its retention) and more than 2 h ahead: they cannot
        # ever be stored there, so they are reported and passed over; the other sinks hold them.
        too_old = rejected.get("tooOldLogEventEndIndex", -1) + 1
        expired = rejected.get("expiredLogEventEndIndex", -1) + 1
        too_new_start = rejected.get("tooNewLogEventStartIndex")
        lost = max(too_old, expired) + (len(batch) - too_new_start if too_new_start is not None else 0)
        logger.error(
            "CloudWatch rejected %d audit events of stream %s (seq %d-%d): %s",
            lost,
            stream,
            batch[0].seq,
            batch[-1].seq,
            rejected,
        )

    def _ensure_stream(self, stream: str) -> None:
        client = self.client
        try:
            client.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
        except client.exceptions.ResourceAlreadyExistsException:
            return
        except client.exceptions.ResourceNotFoundException:
            if not self.create_log_group:
                raise RuntimeError(
                    f"CloudWatch log group {self.log_group!r} does not exist: create it (infrastructure), or set "
                    "BASTION_AUDIT__CLOUDWATCH__CREATE_LOG_GROUP=true"
                ) from None
            with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                client.create_log_group(logGroupName=self.log_group)
            client.create_log_stream(logGroupName=self.log_group, logStreamName=stream)

    def _read_back(self, stream: str, instance_id: str) -> tuple[int, int]:
        """The highest seq of `instance_id` at the end of the stream, and the newest timestamp there."""
        answer = self.client.get_log_events(
            logGroupName=self.log_group, logStreamName=stream, startFromHead=False, limit=READBACK_EVENTS
        )
        last_seq, last_timestamp = 0, 0
        for item in answer.get("events", []):
            last_timestamp = max(last_timestamp, int(item["timestamp"]))
            try:
                document = json.loads(item["message"])
            except ValueError:
                continue
            if document.get("instance_id") == instance_id and isinstance(document.get("seq"), int):
                last_seq = max(last_seq, document["seq"])
        return last_seq, last_timestamp

    # -- reading ------------------------------------------------------------------------------------------------

    def streams(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {"logGroupName": self.log_group}
            if token:
                arguments["nextToken"] = token
            answer = self.client.describe_log_streams(**arguments)
            names += [stream["logStreamName"] for stream in answer.get("logStreams", [])]
            token = answer.get("nextToken")
            if not token:
                return sorted(names)

    def stream_events(self, stream: str, since: datetime | None = None) -> Iterator[tuple[int, str]]:
        """(timestamp, message) of one stream, oldest first."""
        arguments: dict[str, Any] = {"logGroupName": self.log_group, "logStreamName": stream, "startFromHead": True}
        if since is not None:
            arguments["startTime"] = _timestamp_ms(since)
        token: str | None = None
        while True:
            answer = self.client.get_log_events(**arguments, **({"nextToken": token} if token else {}))
            for item in answer.get("events", []):
                yield int(item["timestamp"]), item["message"]
            next_token = answer.get("nextForwardToken")
            if not answer.get("events") or next_token == token:
                return
            token = next_token

    def scan(self, since: datetime | None = None) -> Iterator[StoredLine]:
        """Stream by stream, each in CloudWatch's (time) order; positions count across the whole group."""
        position = 0
        for stream in self.streams():
            for _, message in self.stream_events(stream, since):
                position += 1
                yield StoredLine(position, message)

    def query(self, query: AuditQuery) -> list[tuple[int, AuditEvent]]:
        if query.after_id is not None:
            raise InvalidInput(CANNOT_FOLLOW)
        found: list[tuple[datetime, int, AuditEvent]] = []
        for stored in self.scan(query.since):
            try:
                event = AuditEvent.model_validate_json(stored.line)
            except ValueError:
                continue
            if all(
                wanted is None or getattr(event, field) == wanted
                for field, wanted in (
                    ("subject", query.subject),
                    ("repo", query.repo),
                    ("decision", query.decision),
                    ("tool", query.tool),
                )
            ):
                found.append((event.time, stored.position, event))
        found.sort(key=lambda item: (item[0], item[1]))
        newest = found[-query.limit :] if query.limit > 0 else []
        return [(position, event) for _, position, event in newest]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
