"""Audit events for people (one line each) and for programs (one JSON object each), as the CLI prints them."""

from __future__ import annotations

import json
from datetime import UTC

from bastion.audit.event import AuditEvent

__all__ = ["render_json", "render_line"]

SHORT_SHA = 7
MISSING = "-"


def _target(event: AuditEvent) -> str:
    """`org/repo@ref (sha)`: what was read, and exactly which commit it resolved to."""
    if event.repo is None:
        return MISSING
    target = event.repo
    if event.ref:
        target += f"@{event.ref}"
    if event.resolved_sha and event.resolved_sha != event.ref:
        target += f" ({event.resolved_sha[:SHORT_SHA]})"
    return target


def render_line(event: AuditEvent) -> str:
    """time  subject  client  tool  repo@ref (sha)  decision/outcome  duration  reason"""
    when = event.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"
    fields = [
        when,
        event.subject or MISSING,
        event.client or MISSING,
        event.tool or MISSING,
        _target(event),
        f"{event.decision}/{event.outcome}",
        f"{event.duration_ms:.1f}ms",
    ]
    if event.reason:
        fields.append(json.dumps(event.reason, ensure_ascii=False))  # quoted: a reason may contain spaces
    return "  ".join(fields)


def render_json(event: AuditEvent, position: int | None = None) -> str:
    """The event as one line of JSON; `position` (the storage id) lets a reader resume after it."""
    document = event.model_dump(mode="json")
    if position is not None:
        document = {"id": position, **document}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
