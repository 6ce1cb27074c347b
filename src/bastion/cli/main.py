"""Entry point of the `bastion` console script."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from bastion import __version__
from bastion.cli.common import (
    SETTINGS_ERROR_KEY,
    build_settings,
    describe_settings_error,
    describe_settings_source_error,
    fail,
)

app = typer.Typer(
    name="bastion",
    help="mcp-bastion: governed MCP access to your company's repositories.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mcp-bastion {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="BASTION_DATA_DIR", help="Mirrors, state and audit live here."),
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    try:
        ctx.obj = build_settings(data_dir)
    except (ValidationError, SettingsError) as exc:
        if isinstance(exc, ValidationError):
            message = describe_settings_error(exc)
        else:  # a variable that is not valid JSON where JSON is expected
            message = describe_settings_source_error(exc)
        if ctx.invoked_subcommand == "doctor":  # doctor reports it as its first finding
            ctx.meta[SETTINGS_ERROR_KEY] = message
            return
        raise fail(message, code=2) from None


def _register() -> None:
    """Sub-commands live in their own modules; each exposes a Typer `app` or a `register(app)` for one command."""
    from bastion.cli import audit, client_config, doctor, keys, policy, repo, serve, token

    for module, command_name in ((repo, "repo"), (keys, "keys"), (policy, "policy"), (audit, "audit")):
        app.add_typer(module.app, name=command_name)
    for module in (serve, client_config, token, doctor):
        module.register(app)


_register()


def main() -> None:
    app()
