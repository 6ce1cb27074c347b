"""The long-lived parts of a running server, built once at start-up and handed to every tool call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bastion.audit.event import AuditEvent
from bastion.config import Settings
from bastion.repos.backend import RepositoryBackend
from bastion.tools.access import Access

__all__ = ["Services"]


@dataclass(slots=True)
class Services:
    settings: Settings
    backend: RepositoryBackend
    access: Access
    # AuditLog.record: await the result before answering (the event is then in the durable spool).
    record: Callable[[AuditEvent], Awaitable[None] | None]
