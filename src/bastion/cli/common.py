"""Shared CLI plumbing: settings from the environment plus the global `--data-dir` option, one console."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console

from bastion.config import Settings
from bastion.errors import BastionError

__all__ = [
    "SETTINGS_ERROR_KEY",
    "console",
    "describe_settings_error",
    "describe_settings_source_error",
    "err_console",
    "fail",
    "settings_from",
]

console = Console()
err_console = Console(stderr=True)


def settings_from(ctx: typer.Context) -> Settings:
    """The settings for this invocation (built once by the root callback)."""
    root = ctx.find_root()
    settings = root.obj
    if not isinstance(settings, Settings):  # a sub-app invoked on its own, e.g. in a test
        settings = Settings()
        root.obj = settings
    return settings


SETTINGS_ERROR_KEY = "bastion.settings_error"


def describe_settings_error(error: ValidationError) -> str:
    """One line per bad setting, named as its environment variable. Never the value: it may be a secret."""
    lines: list[str] = []
    for problem in error.errors():
        path = "__".join(str(part) for part in problem["loc"]).upper()
        lines.append(f"BASTION_{path}: {problem['msg']}" if path else str(problem["msg"]).removeprefix("Value error, "))
    return "invalid settings:\n  " + "\n  ".join(lines)


def describe_settings_source_error(error: SettingsError) -> str:
    """pydantic-settings' "error parsing value for field ..." as the variables to look at. Never the value."""
    found = re.search(r'field "(\w+)"', str(error))
    field = found.group(1).upper() if found else ""
    where = f"BASTION_{field} or one of the BASTION_{field}__* variables" if field else "a BASTION_* variable"
    return (
        f"invalid settings: {where} could not be read: settings that take a list or a map are JSON "
        "(e.g. BASTION_SERVER__ALLOWED_HOSTS='[\"mcp.example.com\"]')"
    )


def build_settings(data_dir: Path | None) -> Settings:
    if data_dir is None:
        return Settings()
    return Settings(data_dir=data_dir)


def fail(error: BastionError | str, code: int = 1) -> typer.Exit:
    """Print an error the user can act on and return the Exit to raise."""
    message = error.message if isinstance(error, BastionError) else error
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)
