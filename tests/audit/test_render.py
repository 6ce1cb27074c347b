"""One-line and JSON renderings of audit events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from bastion.audit.event import AuditEvent
from bastion.audit.render import render_json, render_line

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_a_read_shows_who_what_where_which_commit_and_how_long() -> None:
    event = AuditEvent(
        time=datetime(2026, 11, 21, 9, 30, 15, 999999, tzinfo=UTC),
        subject="alice",
        client="claude-code",
        tool="get_file_contents",
        repo="acme/api",
        ref="main",
        resolved_sha=SHA,
        decision="allow",
        outcome="ok",
        duration_ms=12.345,
    )
    assert render_line(event) == (
        "2026-11-21 09:30:15Z  alice  claude-code  get_file_contents  acme/api@main (0123456)  allow/ok  12.3ms"
    )


def test_a_denial_shows_its_reason_quoted_and_missing_fields_as_dashes() -> None:
    event = AuditEvent(
        time=datetime(2026, 11, 21, 11, 0, tzinfo=timezone(timedelta(hours=2))),  # shown in UTC
        subject="bob",
        tool="search_code",
        repo="acme/secrets",
        decision="deny",
        outcome="denied",
        reason='no rule allows bob to search "acme/secrets"',
    )
    assert render_line(event) == (
        "2026-11-21 09:00:00Z  bob  -  search_code  acme/secrets  deny/denied  0.0ms  "
        '"no rule allows bob to search \\"acme/secrets\\""'
    )


def test_a_ref_that_is_already_the_sha_is_not_repeated() -> None:
    event = AuditEvent(repo="acme/api", ref=SHA, resolved_sha=SHA)
    assert f"acme/api@{SHA}  " in render_line(event)
    assert "(0123456)" not in render_line(event)


def test_an_authentication_failure_has_no_repository() -> None:
    event = AuditEvent(
        time=datetime(2026, 11, 21, tzinfo=UTC), outcome="unauthenticated", reason="API key 0123456789ab was revoked"
    )
    assert (
        render_line(event)
        == '2026-11-21 00:00:00Z  -  -  -  -  none/unauthenticated  0.0ms  "API key 0123456789ab was revoked"'
    )


def test_json_is_one_line_with_the_position_first() -> None:
    event = AuditEvent(subject="alice", paths=["a.py"], metadata={"redactions": 1})
    text = render_json(event, position=42)
    assert "\n" not in text
    document = json.loads(text)
    assert next(iter(document)) == "id"
    assert document["id"] == 42
    assert AuditEvent.model_validate({key: value for key, value in document.items() if key != "id"}) == event
    assert "id" not in json.loads(render_json(event))


def test_caller_supplied_fields_cannot_break_the_line_or_drive_the_terminal() -> None:
    event = AuditEvent(
        time=datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
        subject="mallory\rroot",
        client="evil\x1b]0;title\x07",
        tool="get_file_contents\x85",
        repo="acme/x\n2026-11-21 09:30:00Z  alice  -  get_file_contents  acme/api@main  allow/ok  1.0ms",
        ref="main\u2028x\x7f",
        decision="deny",
        outcome="invalid_input",
        reason="bad\nname",
    )
    line = render_line(event)
    assert "\n" not in line
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029" for ch in line), repr(line)
    # Escaped, not dropped: the operator still sees what was sent.
    assert "acme/x\\x0a2026-11-21" in line
    assert "mallory\\x0droot" in line
    assert "evil\\x1b]0;title\\x07" in line
    assert "main\\u2028x\\x7f" in line
    assert '"bad\\nname"' in line  # the reason was already JSON-quoted
