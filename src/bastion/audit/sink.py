"""Where audit events go. Several sinks may run at once; each gets every event, in order, from the spool."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from bastion.audit.event import AuditEvent

__all__ = ["INDEXED_COLUMNS", "AuditQuery", "AuditSink", "QueryableSink", "SealedEvent", "StoredLine", "SyncableSink"]


@dataclass(frozen=True, slots=True)
class SealedEvent:
    """One event as the spool sealed it: its place in the instance's chain and the exact JSON line every sink
    stores verbatim (so any copy can be verified), plus the columns sinks index, taken from the same event."""

    instance_id: str
    seq: int
    event_id: str
    time: datetime  # aware, UTC
    subject: str | None
    repo: str | None
    decision: str
    tool: str | None
    outcome: str
    hash: str  # the chain hash, also inside `line`
    line: str  # canonical JSON of the whole event, `hash` included (bastion.audit.chain)


# Columns a SQL sink copies from each event for `audit search` to filter on; verify compares them with the line.
INDEXED_COLUMNS = ("event_id", "time", "subject", "repo", "decision", "tool", "outcome", "instance_id", "seq")


@dataclass(frozen=True, slots=True)
class StoredLine:
    """A line as a sink holds it, with its storage position (what `verify` checks the order of)."""

    position: int
    line: str
    # The sink's own copies of the line's fields, which its queries filter on (`bastion audit search`): verify
    # checks them against the sealed line, or an edit of a column alone would hide a record from searches.
    columns: tuple[tuple[str, object], ...] = ()


CANNOT_FOLLOW = (
    "following new events needs a sink with storage positions (sqlite, postgresql, jsonl); "
    "for CloudWatch use `aws logs tail --follow`"
)


class AuditSink(Protocol):
    """Receives sealed events in seq order. `write` may block; it is never called on the event loop."""

    name: str

    def write(self, events: Sequence[SealedEvent]) -> None:
        """Store the batch, or raise (the pipeline keeps the batch in the spool and retries it). Must be
        idempotent: after an ambiguous failure the same events (same `event_id`) may come again."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SyncableSink(AuditSink, Protocol):
    """A sink whose `write` commits without waiting for the disk (it survives a crash of the process, not a power
    loss). The pipeline calls `sync` before it saves the sink's cursor, so the saved cursor never runs ahead of
    what the sink holds durably; the spool keeps everything after that cursor."""

    def sync(self) -> None:
        """Make everything `write` has committed so far durable (fsync), or raise."""
        ...


@dataclass(frozen=True, slots=True)
class AuditQuery:
    subject: str | None = None
    repo: str | None = None
    decision: str | None = None
    tool: str | None = None
    since: datetime | None = None
    after_id: int | None = None  # for `tail -f`: only rows stored after this position
    limit: int = 100


class QueryableSink(AuditSink, Protocol):
    """A sink that can also answer `bastion audit tail/search/export/verify`."""

    # Whether `query(AuditQuery(after_id=...))` works: storage positions that only grow (`audit tail -f`).
    follows: bool

    def query(self, query: AuditQuery) -> list[tuple[int, AuditEvent]]:
        """Matching events with their storage position, oldest first (the newest `limit` of them)."""
        ...

    def scan(self, since: datetime | None = None) -> Iterator[StoredLine]:
        """Every stored line (from `since` on, when given) in storage order, exactly as stored."""
        ...
