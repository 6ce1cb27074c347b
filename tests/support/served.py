"""What every test deployment of the app offers, whatever else it carries: its MCP URL, its runtime, and the audit
events it stored (after a flush of the pipeline)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette

from bastion.app import Runtime
from bastion.audit.event import AuditEvent
from bastion.audit.sink import AuditQuery
from bastion.audit.sqlite import SqliteAuditSink
from bastion.auth.keys import KeyStore
from bastion.config import Settings
from bastion.store.db import open_state

__all__ = ["ServedBastion", "issue_key"]


class ServedBastion:
    """A mixin for the deployment dataclasses of the end-to-end and security suites."""

    settings: Settings
    app: Starlette
    url: str  # http://127.0.0.1:PORT

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime

    async def flush(self) -> None:
        assert await self.runtime.audit.flush(10), "the audit pipeline did not write within 10 s"

    async def audit(self, **query: Any) -> list[AuditEvent]:
        """Audit events as stored in the SQLite audit database (after a flush), oldest first."""
        await self.flush()
        sink = SqliteAuditSink(self.settings.audit_db)
        try:
            return [event for _, event in sink.query(AuditQuery(limit=100_000, **query))]
        finally:
            sink.close()


def issue_key(settings: Settings, subject: str, *, groups: tuple[str, ...], description: str) -> str:
    """A day-long API key for `subject` in the deployment's state store; the plaintext key."""
    engine = open_state(settings)
    try:
        _, key = KeyStore(engine).create(
            subject, groups=groups, expires_at=datetime.now(UTC) + timedelta(days=1), description=description
        )
    finally:
        engine.dispose()
    return key
