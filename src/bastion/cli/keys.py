"""`bastion keys`: issue, list and revoke API keys in the state store."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.auth.keys import KEY_ID_PATTERN, KEY_PREFIX, ApiKeyRecord, KeyStore, parse_key_id
from bastion.cli.common import fail, settings_from
from bastion.errors import BastionError, InvalidInput
from bastion.store.db import open_state

__all__ = ["app", "parse_duration", "parse_instant"]

app = typer.Typer(help="Issue, list and revoke API keys.", no_args_is_help=True)

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta | None:
    """`90d`, `12h`, `30m`, `2w`, `45s` as a timedelta; None when `text` is not a duration."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        return None
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_instant(text: str) -> datetime | None:
    """`2027-01-01` (midnight UTC), `2026-11-01T00:00Z`, or any ISO 8601 time (UTC when no offset is given)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _expiry(text: str, now: datetime) -> datetime | None:
    if text.strip().lower() == "never":
        return None
    try:
        duration = parse_duration(text)
        moment = now + duration if duration is not None else parse_instant(text)
    except OverflowError:  # 99999999d: past the year 9999
        moment = None
    if moment is None:
        raise InvalidInput(f"--expires {text!r}: use a duration (90d, 12h, 2w), a date (2027-01-01), or 'never'")
    if moment <= now:
        raise InvalidInput(f"--expires {text!r} is not in the future")
    return moment


def _when(moment: datetime | None, empty: str = "never") -> str:
    return empty if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _store(ctx: typer.Context) -> KeyStore:
    try:
        return KeyStore(open_state(settings_from(ctx)))
    except BastionError as error:
        raise fail(error) from error


def _write_secret_file(path: Path, key: str) -> None:
    # O_EXCL: never overwrite a file (it may hold another key); 0600 from the first byte on disk.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")


@app.command()
def create(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--subject", help="The user or service the key acts as.")],
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="A group the key's holder is in (repeatable).")
    ] = None,
    expires: Annotated[
        str, typer.Option("--expires", help="A duration (90d, 12h, 2w), a date (2027-01-01), or 'never'.")
    ] = "90d",
    description: Annotated[str | None, typer.Option("--description", help="What the key is for.")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the key to this new file (mode 0600) instead of printing it."),
    ] = None,
) -> None:
    """Issue a key. It is shown once: store it now."""
    if output is not None and output.exists():
        raise fail(f"{output} already exists; choose a new file so no other secret is overwritten")
    store = _store(ctx)
    try:
        record, key = store.create(subject, group or [], _expiry(expires, datetime.now(UTC)), description)
    except BastionError as error:
        raise fail(error) from error
    summary = (
        f"Created API key {record.key_id} for {record.subject}"
        f" (groups: {', '.join(record.groups) or 'none'}; expires: {_when(record.expires_at)})."
    )
    if output is not None:
        _write_secret_file(output, key)
        typer.echo(summary, err=True)
        typer.echo(f"The key is in {output} (mode 0600); it cannot be shown again.", err=True)
        typer.echo(record.key_id)
        return
    typer.echo(summary, err=True)
    typer.echo(key)  # alone on stdout, so `KEY=$(bastion keys create ...)` captures exactly the key
    typer.echo("Store this key now: it cannot be shown again (only its hash is kept).", err=True)


def _as_json(record: ApiKeyRecord, now: datetime) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "subject": record.subject,
        "groups": list(record.groups),
        "description": record.description,
        "created_at": record.created_at.isoformat(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "status": record.status(now),
    }


@app.command("list")
def list_keys(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for scripts.")] = False,
) -> None:
    """Every key with its status (active, expired, revoked). Never shows keys or their hashes."""
    records = _store(ctx).list()
    now = datetime.now(UTC)
    if as_json:
        typer.echo(json.dumps([_as_json(record, now) for record in records], indent=2))
        return
    if not records:
        typer.echo("No API keys yet: `bastion keys create --subject NAME` issues one.", err=True)
        return
    header = ("ID", "SUBJECT", "GROUPS", "CREATED", "EXPIRES", "STATUS", "DESCRIPTION")
    rows = [
        (
            record.key_id,
            record.subject,
            ",".join(record.groups) or "-",
            _when(record.created_at),
            _when(record.expires_at),
            record.status(now),
            record.description or "",
        )
        for record in records
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@app.command()
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id, as `bastion keys list` shows it.")],
) -> None:
    """Revoke a key. A running server refuses it from its next request on."""
    from_key = parse_key_id(key_id)
    if from_key is not None:  # the whole key was pasted: revoke it by its id, and never print the secret back
        key_id = from_key
    elif key_id.startswith(KEY_PREFIX) or not KEY_ID_PATTERN.fullmatch(key_id):
        raise fail("not a key id: give the 12 hexadecimal characters `bastion keys list` shows (or the whole key)")
    store = _store(ctx)
    before = store.get(key_id)
    if before is not None and before.revoked_at is not None:
        typer.echo(f"Key {key_id} ({before.subject}) was already revoked at {_when(before.revoked_at)} UTC.")
        return
    try:
        record = store.revoke(key_id)
    except BastionError as error:
        raise fail(error) from error
    typer.echo(f"Revoked key {record.key_id} ({record.subject}) at {_when(record.revoked_at)} UTC.")
