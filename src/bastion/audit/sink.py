"""Where audit events go. Several sinks may run at once; each gets every event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bastion.audit.event import AuditEvent

__all__ = ["AuditQuery", "AuditSink", "QueryableSink"]


class AuditSink(Protocol):
    """Receives batches of events in order. `write` may block; it is never called on the event loop."""

    name: str

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Persist the batch, or raise (the pipeline keeps the batch and retries)."""
        ...

    def close(self) -> None: ...


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
    """A sink that can also answer `bastion audit tail/search`."""

    def query(self, query: AuditQuery) -> list[tuple[int, AuditEvent]]:
        """Matching events with their storage position, oldest first (the newest `limit` of them)."""
        ...
