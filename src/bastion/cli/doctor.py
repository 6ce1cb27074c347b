"""`bastion doctor`: run the checks in `bastion.doctor` and print what is wrong and how to fix it. Exit status 0
when every check passed or was skipped, 1 otherwise."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from bastion.cli.common import SETTINGS_ERROR_KEY, console, settings_from
from bastion.doctor import run_checks
from bastion.doctor.result import fail_result

__all__ = ["register"]

_LABELS = {"ok": "[green]OK  [/]", "fail": "[bold red]FAIL[/]", "skip": "[dim]SKIP[/]"}


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per check.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.5, help="Seconds per network check.")] = 5.0,
) -> None:
    """Check configuration, data directory, policy, state store, audit sinks, mirrors, git/rg, secrets, clock and
    the rate-limit store; print what is wrong and how to fix it. Exit status 1 when anything failed."""
    settings_error = ctx.find_root().meta.get(SETTINGS_ERROR_KEY)
    if settings_error:
        results = [
            fail_result("settings", settings_error, "fix the BASTION_* variables named above (docs/configuration.md)")
        ]
    else:
        results = run_checks(settings_from(ctx), timeout)
    if as_json:
        for result in results:
            typer.echo(json.dumps(asdict(result)))
    else:
        width = max(len(result.check) for result in results)
        for result in results:
            label = _LABELS[result.status]
            console.print(f"{label}  {result.check:<{width}}  {result.detail}", highlight=False, soft_wrap=True)
            if result.fix:
                console.print(f"      {'':<{width}}  fix: {result.fix}", highlight=False, soft_wrap=True)
        failed = sum(result.status == "fail" for result in results)
        console.print(
            f"{failed} problem(s)" if failed else "everything checked is fine", highlight=False, soft_wrap=True
        )
    if any(result.status == "fail" for result in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
