"""`bastion repo add|sync|list`: manage the mirrored repositories.

A running server picks up changes by itself (it re-reads the registry file and the mirrors' sync markers).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bastion.cli.common import console, err_console, fail, settings_from
from bastion.errors import BastionError
from bastion.repos.registry import Registry
from bastion.repos.sync import SyncProgress, add_repository, sync_all, sync_repository
from bastion.repos.types import RepoInfo

__all__ = ["app"]

app = typer.Typer(help="Mirrored repositories: add, sync, list.", no_args_is_help=True)


class _ProgressBars:
    """One rich progress bar per repository, fed by sync progress callbacks."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, event: SyncProgress) -> None:
        task = self._tasks.get(event.repo)
        if task is None:
            task = self._progress.add_task(event.repo, total=100, step="")
            self._tasks[event.repo] = task
        self._progress.update(task, step=event.step, completed=event.percent)  # None leaves the bar as it is


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Remote URL (https, ssh, git, file) or a local path; no credentials.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Register as owner/repo (default: from the URL's last two parts).")
    ] = None,
) -> None:
    """Register a repository and create its mirror (the first sync runs now)."""
    settings = settings_from(ctx)
    try:
        with _progress() as progress:
            info = asyncio.run(add_repository(settings, url, name, progress=_ProgressBars(progress)))
    except BastionError as exc:
        raise fail(exc) from None
    console.print(
        f"added [bold]{info.name}[/] (default branch {info.default_branch or '-'}, head {_short(info.head_sha)})",
        highlight=False,
    )


@app.command("sync")
def sync(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="owner/repo to sync.")] = None,
    all_repos: Annotated[bool, typer.Option("--all", help="Sync every registered repository.")] = False,
) -> None:
    """Fetch new commits, branches and tags from the remote."""
    settings = settings_from(ctx)
    if (name is None) == (not all_repos):
        raise fail("give a repository name or --all (not both)", code=2)
    outcomes: list[tuple[str, RepoInfo | BastionError]]
    with _progress() as progress:
        bars = _ProgressBars(progress)
        if name is not None:
            try:
                outcomes = [(name, asyncio.run(sync_repository(settings, name, progress=bars)))]
            except BastionError as exc:
                outcomes = [(name, exc)]
        else:
            outcomes = asyncio.run(sync_all(settings, progress=bars))
    failed = 0
    for _repo, outcome in outcomes:
        if isinstance(outcome, BastionError):
            failed += 1
            err_console.print(f"[bold red]error:[/] {outcome.message}", highlight=False)
        else:
            console.print(f"synced [bold]{outcome.name}[/] (head {_short(outcome.head_sha)})", highlight=False)
    if not outcomes:
        console.print("no repositories registered (add one with `bastion repo add URL`)")
    if failed:
        raise typer.Exit(1)


@app.command("list")
def list_repos(ctx: typer.Context) -> None:
    """Show the registered repositories and their last sync."""
    settings = settings_from(ctx)
    try:
        records = Registry(settings.data_dir).records()
    except BastionError as exc:
        raise fail(exc) from None
    if not records:
        console.print("no repositories registered (add one with `bastion repo add URL`)")
        return
    table = Table("name", "default branch", "head", "last sync", "error")
    for record in records:
        table.add_row(
            record.name,
            record.default_branch or "-",
            _short(record.head_sha),
            _when(record.last_sync_at),
            record.last_sync_error or "",
        )
    console.print(table)
