"""Audit events for people (one line each) and for programs (one JSON object each), as the CLI prints them."""

from __future__ import annotations

import json
from datetime import UTC

from bastion.audit.event import AuditEvent

__all__ = ["LINE_HEADER", "render_json", "render_line"]

SHORT_SHA = 7
MISSING = "-"
# Control characters (C0, DEL, C1) and Unicode line/paragraph separators: a refused call's repository, ref or client
# name is recorded as the caller sent it (that is the evidence), but printed raw it could forge or erase lines on the
# operator's terminal. Shown escaped instead.
_UNPRINTABLE = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_UNPRINTABLE.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def _printable(text: str) -> str:
    return text.translate(_UNPRINTABLE)


def _target(event: AuditEvent) -> str:
    """`org/repo@ref (sha)`: what was read, and exactly which commit it resolved to."""
    if event.repo is None:
        return MISSING
    target = _printable(event.repo)
    if event.ref:
        target += f"@{_printable(event.ref)}"
    if event.resolved_sha and event.resolved_sha != event.ref:
        target += f" ({_printable(event.resolved_sha[:SHORT_SHA])})"
    return target


LINE_HEADER = "time  subject  client  tool  repo@ref (sha)  decision/outcome  duration  reason"


def render_line(event: AuditEvent) -> str:
    """time  subject  client  tool  repo@ref (sha)  decision/outcome  duration  reason"""
    when = event.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"
    fields = [
        when,
        _printable(event.subject or MISSING),
        _printable(event.client or MISSING),
        _printable(event.tool or MISSING),
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
