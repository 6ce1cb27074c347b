"""Entry point of the `bastion` console script."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion import __version__
from bastion.cli.common import build_settings

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
    ctx.obj = build_settings(data_dir)


def _register() -> None:
    """Sub-commands live in their own modules; each exposes a Typer `app` (or a function for single commands)."""
    import importlib

    for module_name, command_name in (
        ("bastion.cli.repo", "repo"),
        ("bastion.cli.keys", "keys"),
        ("bastion.cli.policy", "policy"),
        ("bastion.cli.audit", "audit"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a sub-command still being written
            if exc.name != module_name:
                raise
            continue
        app.add_typer(module.app, name=command_name)
    for module_name in ("bastion.cli.serve", "bastion.cli.client_config", "bastion.cli.token", "bastion.cli.doctor"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    app()
