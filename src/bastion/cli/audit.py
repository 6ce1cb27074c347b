"""`bastion audit`: read and check the audit log in any queryable sink (`tail`, `tail -f`, `search`, `export`,
`verify`). `--sink` picks one of the configured sinks (sqlite, jsonl, postgresql, cloudwatch); the default is the
first of BASTION_AUDIT__SINKS."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer

from bastion.audit.event import AuditEvent
from bastion.audit.render import LINE_HEADER, render_json, render_line
from bastion.audit.setup import chain_key, open_sink
from bastion.audit.sink import CANNOT_FOLLOW, AuditQuery, QueryableSink
from bastion.audit.spool import read_heads
from bastion.audit.verify import VerifyReport, verify_lines
from bastion.cli.common import fail, settings_from
from bastion.cli.keys import parse_duration, parse_instant
from bastion.config import Settings
from bastion.errors import BastionError

__all__ = ["app"]

app = typer.Typer(help="Read and verify the audit log: who called what, on which repository, with what result.")

FOLLOW_BATCH = 500


class DecisionChoice(StrEnum):
    allow = "allow"
    deny = "deny"
    none = "none"


class SinkChoice(StrEnum):
    sqlite = "sqlite"
    jsonl = "jsonl"
    postgresql = "postgresql"
    cloudwatch = "cloudwatch"


class ExportFormat(StrEnum):
    jsonl = "jsonl"


SinkOption = Annotated[
    SinkChoice | None, typer.Option("--sink", help="Which sink to read (default: the first configured one).")
]


def _missing(settings: Settings, name: str) -> str | None:
    """Why a local sink has nothing to read yet, or None."""
    if name == "sqlite" and not settings.audit_db.exists():
        return (
            f"no audit database at {settings.audit_db} yet: the server creates it when it starts "
            "(use --data-dir, or BASTION_AUDIT__SQLITE_PATH, to read another one)"
        )
    if (
        name == "jsonl"
        and not settings.audit_jsonl.exists()
        and not list(settings.audit_jsonl.parent.glob(settings.audit_jsonl.name + ".*"))
    ):
        return f"no audit file at {settings.audit_jsonl} yet (BASTION_AUDIT__JSONL__PATH reads another one)"
    return None


def _open(ctx: typer.Context, sink: SinkChoice | None) -> QueryableSink:
    settings = settings_from(ctx)
    name = sink.value if sink is not None else settings.audit.sinks[0]
    missing = _missing(settings, name)
    if missing:
        raise fail(missing)
    try:
        return open_sink(settings, name)
    except BastionError as error:
        raise fail(error) from error


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        duration = parse_duration(text)
        moment = datetime.now(UTC) - duration if duration is not None else parse_instant(text)
    except OverflowError:  # 999999d: before the year 1
        moment = None
    if moment is None:
        raise fail(f"--since {text!r}: use a duration back from now (90m, 1h, 2d) or a time (2026-11-01T00:00Z)")
    return moment


def _header(as_json: bool) -> None:
    """What the columns of a human line are, on stderr: stdout stays nothing but events, for pipes and grep."""
    if not as_json:
        typer.echo(LINE_HEADER, err=True)


def _print(rows: list[tuple[int, AuditEvent]], as_json: bool) -> None:
    for position, event in rows:
        typer.echo(render_json(event, position) if as_json else render_line(event))


def _query(sink: QueryableSink, query: AuditQuery) -> list[tuple[int, AuditEvent]]:
    try:
        return sink.query(query)
    except BastionError as error:
        raise fail(error) from error
    except Exception as error:  # a remote sink that is down or refuses us: say so, no traceback
        raise fail(f"audit sink {sink.name}: {type(error).__name__}: {error}") from error


@app.command()
def tail(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many of the newest events to show.")] = 20,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new events until Ctrl-C.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.05, hidden=True, help="Seconds between polls.")] = 1.0,
    sink_name: SinkOption = None,
) -> None:
    """The newest events, oldest first; with -f, then every new one as it is written."""
    sink = _open(ctx, sink_name)
    if follow and not sink.follows:  # say so before printing anything, not after the newest events
        sink.close()
        raise fail(f"audit sink {sink.name}: {CANNOT_FOLLOW}")
    try:
        rows = _query(sink, AuditQuery(limit=lines))
        _header(as_json)
        if not rows and not as_json and lines:
            typer.echo("No audit events yet." + (" Waiting for new ones (Ctrl-C to stop)." if follow else ""), err=True)
        _print(rows, as_json)
        if not follow:
            return
        if rows:
            last_id = rows[-1][0]
        else:  # -n 0, or an empty log: start after whatever is there now
            newest = _query(sink, AuditQuery(limit=1))
            last_id = newest[-1][0] if newest else 0
        try:
            while True:
                time.sleep(interval)
                while rows := _query(sink, AuditQuery(after_id=last_id, limit=FOLLOW_BATCH)):
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
    sink_name: SinkOption = None,
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
    sink = _open(ctx, sink_name)
    try:
        rows = _query(sink, query)
    finally:
        sink.close()
    if not rows and not as_json:
        typer.echo("No matching audit events.", err=True)
    elif rows:
        _header(as_json)
    _print(rows, as_json)


@app.command()
def export(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option("--since", help="Only events from this long ago (1h, 2d) or this time on.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    export_format: Annotated[ExportFormat, typer.Option("--format", help="jsonl: one sealed event per line.")] = (
        ExportFormat.jsonl
    ),
    sink_name: SinkOption = None,
) -> None:
    """Every stored event, in storage order, exactly as sealed (chain fields included, so a SIEM can verify)."""
    moment = _since(since)
    sink = _open(ctx, sink_name)
    count = 0
    try:
        with contextlib.ExitStack() as stack:
            handle: TextIO = sys.stdout
            if output is not None:  # subjects, addresses and paths: readable by the operator only (created 0600)
                descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                handle = stack.enter_context(open(descriptor, "w", encoding="utf-8"))
            for stored in sink.scan(moment):
                handle.write(stored.line + "\n")
                count += 1
    except BastionError as error:
        raise fail(error) from error
    finally:
        sink.close()
    typer.echo(f"exported {count} events ({export_format.value}) from {sink.name}", err=True)


def _print_report(report: VerifyReport) -> None:
    state = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    typer.echo(f"{report.sink}: {report.records} records, {len(report.instances)} instance(s): {state}")
    for instance in report.instances:
        span = f"seq {instance.first_seq}-{instance.last_seq}"
        typer.echo(f"  instance {instance.instance_id}: {instance.records} records, {span}")
    for problem in report.problems:
        typer.echo(f"  {problem.render()}")


@app.command()
def verify(
    ctx: typer.Context,
    sinks: Annotated[
        list[SinkChoice] | None,
        typer.Option("--sink", help="Sink to verify (repeatable; default: every configured sink)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The reports as one JSON document.")] = False,
    plain_instances: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-plain-instance",
            help="With an HMAC key: an instance (id) that ran before the key was configured, so all its records are "
            "plain SHA-256 (repeatable). Any other instance without a keyed record is reported.",
        ),
    ] = None,
) -> None:
    """Check the hash chain: report modified, deleted, inserted and reordered records, and gaps. Exit 1 if any."""
    settings = settings_from(ctx)
    try:
        key = chain_key(settings)
    except BastionError as error:
        raise fail(error) from error
    heads = read_heads(settings.audit_spool_dir) if settings.audit_spool_dir.is_dir() else []
    names = [choice.value for choice in sinks] if sinks else list(dict.fromkeys(settings.audit.sinks))
    reports: list[VerifyReport] = []
    for name in names:
        sink = _open(ctx, SinkChoice(name))
        try:
            reports.append(verify_lines(name, sink.scan(), key=key, heads=heads, plain_instances=plain_instances or ()))
        except BastionError as error:
            raise fail(error) from error
        except Exception as error:
            raise fail(f"audit sink {name}: {type(error).__name__}: {error}") from error
        finally:
            sink.close()
    if as_json:
        document = [
            {
                "sink": report.sink,
                "records": report.records,
                "ok": report.ok,
                "instances": [
                    {
                        "instance_id": instance.instance_id,
                        "records": instance.records,
                        "first_seq": instance.first_seq,
                        "last_seq": instance.last_seq,
                    }
                    for instance in report.instances
                ],
                "problems": [problem.as_dict() for problem in report.problems],
            }
            for report in reports
        ]
        typer.echo(json.dumps(document, indent=2))
    else:
        for report in reports:
            _print_report(report)
    if not all(report.ok for report in reports):
        raise typer.Exit(1)
