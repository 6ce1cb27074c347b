"""`bastion audit`: read the SQLite audit log (`tail`, `tail -f`, `search`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from bastion.audit.event import AuditEvent
from bastion.audit.render import render_json, render_line
from bastion.audit.sink import AuditQuery
from bastion.audit.sqlite import SqliteAuditSink
from bastion.cli.common import fail, settings_from
from bastion.cli.keys import parse_duration, parse_instant
from bastion.errors import BastionError

__all__ = ["app"]

app = typer.Typer(help="Read the audit log: who called what, on which repository, with what result.")

FOLLOW_BATCH = 500


class DecisionChoice(StrEnum):
    allow = "allow"
    deny = "deny"
    none = "none"


def _open(ctx: typer.Context) -> SqliteAuditSink:
    path = settings_from(ctx).audit_db
    if not path.exists():
        raise fail(
            f"no audit database at {path} yet: the server creates it when it starts "
            "(use --data-dir, or BASTION_AUDIT__SQLITE_PATH, to read another one)"
        )
    try:
        return SqliteAuditSink(path)
    except BastionError as error:
        raise fail(error) from error


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    duration = parse_duration(text)
    moment = datetime.now(UTC) - duration if duration is not None else parse_instant(text)
    if moment is None:
        raise fail(f"--since {text!r}: use a duration back from now (90m, 1h, 2d) or a time (2026-11-01T00:00Z)")
    return moment


def _print(rows: list[tuple[int, AuditEvent]], as_json: bool) -> None:
    for position, event in rows:
        typer.echo(render_json(event, position) if as_json else render_line(event))


@app.command()
def tail(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many of the newest events to show.")] = 20,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new events until Ctrl-C.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.05, hidden=True, help="Seconds between polls.")] = 1.0,
) -> None:
    """The newest events, oldest first; with -f, then every new one as it is written."""
    sink = _open(ctx)
    try:
        rows = sink.query(AuditQuery(limit=lines))
        _print(rows, as_json)
        if not follow:
            return
        if rows:
            last_id = rows[-1][0]
        else:  # -n 0, or an empty log: start after whatever is there now
            newest = sink.query(AuditQuery(limit=1))
            last_id = newest[-1][0] if newest else 0
        try:
            while True:
                time.sleep(interval)
                while rows := sink.query(AuditQuery(after_id=last_id, limit=FOLLOW_BATCH)):
                    _print(rows, as_json)
                    last_id = rows[-1][0]
        except KeyboardInterrupt:  # Ctrl-C is how -f ends: leave quietly, exit status 0
            return
    finally:
        sink.close()


@app.command()
def search(
    ctx: typer.Context,
    subject: Annotated[str | None, typer.Option("--subject", help="Only this caller.")] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="Only this repository (org/name).")] = None,
    decision: Annotated[DecisionChoice | None, typer.Option("--decision", help="Only allowed or denied calls.")] = None,
    tool: Annotated[str | None, typer.Option("--tool", help="Only this tool.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only events from this long ago (1h, 2d) or this time on.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many (the newest).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Events matching every filter given, oldest first."""
    query = AuditQuery(
        subject=subject,
        repo=repo,
        decision=decision.value if decision is not None else None,
        tool=tool,
        since=_since(since),
        limit=limit,
    )
    sink = _open(ctx)
    try:
        rows = sink.query(query)
    finally:
        sink.close()
    if not rows and not as_json:
        typer.echo("No matching audit events.", err=True)
    _print(rows, as_json)
