"""The PostgreSQL sink: the audit log of every instance in one shared table (SQLAlchemy Core, psycopg 3).

By default it lives in the shared state database (`BASTION_STATE_URL`), in its own table `audit_events`, created
by this sink (not by the state store's migrations: the audit schema belongs to the audit pipeline, and the same
table shape is used in SQLite). Nothing is contacted at construction: a database that is down when the server
starts is just a sink whose backlog waits in the spool.

Rows are inserted with `ON CONFLICT (event_id) DO NOTHING`, so re-delivery stores nothing twice. `id` (a
bigserial) is the storage order `verify` checks; `event` holds the sealed line verbatim as TEXT (not JSONB,
which would re-serialise it and break the hash).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from bastion.audit.event import AuditEvent
from bastion.audit.sink import INDEXED_COLUMNS, AuditQuery, SealedEvent, StoredLine

__all__ = ["PostgresAuditSink", "audit_events"]

_CREATE_LOCK_KEY = 0x6D6370617564  # "mcpaud": an arbitrary key of this package for pg_advisory_xact_lock

metadata = sa.MetaData()

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("repo", sa.Text),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("tool", sa.Text),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("instance_id", sa.String(64)),
    sa.Column("seq", sa.BigInteger),
    sa.Column("event", sa.Text, nullable=False),
    sa.Index("ix_audit_events_time", "time"),
    sa.Index("ix_audit_events_subject", "subject"),
    sa.Index("ix_audit_events_repo", "repo"),
    sa.Index("ix_audit_events_chain", "instance_id", "seq"),
)

SCAN_PAGE = 5_000


class PostgresAuditSink:
    """Implements `QueryableSink`."""

    follows = True

    def __init__(self, url: str | sa.URL, name: str = "postgresql") -> None:
        self.name = name
        # A small pool: one delivery thread writes, the CLI reads. pre_ping: a restarted server is noticed.
        self._engine = sa.create_engine(url, pool_size=2, max_overflow=2, pool_pre_ping=True, pool_recycle=1800)
        self._ready = False
        self._ready_lock = threading.Lock()

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def _ensure_table(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                with self._engine.begin() as connection:
                    # Several servers (and the CLI) may meet an empty database at once: without the lock, two
                    # check-then-create sequences interleave and the second fails with "already exists". The
                    # transaction-scoped advisory lock makes them take turns; it is released at commit.
                    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK_KEY})
                    metadata.create_all(connection, checkfirst=True)
                self._ready = True

    def write(self, events: Sequence[SealedEvent]) -> None:
        self._ensure_table()
        rows = [
            {
                "event_id": event.event_id,
                "time": event.time,
                "subject": event.subject,
                "repo": event.repo,
                "decision": event.decision,
                "tool": event.tool,
                "outcome": event.outcome,
                "instance_id": event.instance_id,
                "seq": event.seq,
                "event": event.line,
            }
            for event in events
        ]
        statement = pg_insert(audit_events).on_conflict_do_nothing(index_elements=["event_id"])
        with self._engine.begin() as connection:
            connection.execute(statement, rows)

    def query(self, query: AuditQuery) -> list[tuple[int, AuditEvent]]:
        self._ensure_table()
        table = audit_events
        statement = sa.select(table.c.id, table.c.event)
        for column, value in (
            (table.c.subject, query.subject),
            (table.c.repo, query.repo),
            (table.c.decision, query.decision),
            (table.c.tool, query.tool),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if query.since is not None:
            statement = statement.where(table.c.time >= query.since)
        if query.after_id is not None:
            statement = statement.where(table.c.id > query.after_id).order_by(table.c.id.asc())
        else:
            statement = statement.order_by(table.c.id.desc())
        statement = statement.limit(max(query.limit, 0))
        with self._engine.connect() as connection:
            rows: list[Any] = list(connection.execute(statement))
        if query.after_id is None:
            rows.reverse()
        return [(int(row.id), AuditEvent.model_validate_json(row.event)) for row in rows]

    def scan(self, since: datetime | None = None) -> Iterator[StoredLine]:
        self._ensure_table()
        table = audit_events
        last_id = 0
        while True:
            indexed = [table.c[name] for name in INDEXED_COLUMNS]
            statement = sa.select(table.c.id, table.c.event, *indexed).where(table.c.id > last_id)
            if since is not None:
                statement = statement.where(table.c.time >= since)
            statement = statement.order_by(table.c.id).limit(SCAN_PAGE)
            with self._engine.connect() as connection:
                rows: list[Any] = list(connection.execute(statement))
            if not rows:
                return
            for row in rows:
                yield StoredLine(int(row.id), row.event, tuple(zip(INDEXED_COLUMNS, row[2:], strict=True)))
            last_id = int(rows[-1].id)

    def close(self) -> None:
        self._engine.dispose()
