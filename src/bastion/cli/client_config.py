"""`bastion client-config`: print configuration for an MCP client."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from bastion.cli.common import console, fail, settings_from
from bastion.clients import CLIENTS, ClientName, render_client_config

__all__ = ["register"]


def client_config(
    ctx: typer.Context,
    client: Annotated[str, typer.Option("--client", help=f"One of: {', '.join(CLIENTS)}.")],
    url: Annotated[str | None, typer.Option("--url", help="MCP endpoint. Default: the configured public URL.")] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="File holding the API key.")] = None,
    embed_key: Annotated[
        bool, typer.Option("--embed-key", help="Put the key itself in the snippet (it is then a secret).")
    ] = False,
    name: Annotated[str, typer.Option("--name", help="Server name shown in the client.")] = "bastion",
) -> None:
    """Print ready-to-paste configuration for Claude Code, Claude Desktop, VS Code or Cursor."""
    if client not in CLIENTS:
        raise fail(f"unknown client '{client}': choose one of {', '.join(CLIENTS)}", code=2)
    key: str | None = None
    if key_file is not None:
        try:
            key = key_file.read_text().strip()
        except OSError as exc:
            raise fail(f"cannot read key file {key_file}: {exc.strerror}", code=2) from exc
        if not key:
            raise fail(f"key file {key_file} is empty", code=2)
        if "\n" in key or len(key) > 16384:  # never embed a whole file (a private key, /etc/passwd) as a token
            raise fail(f"key file {key_file} holds more than one line: it should hold the API key alone", code=2)
    if embed_key and key is None:
        raise fail("--embed-key needs --key-file", code=2)
    endpoint = url or settings_from(ctx).resource_url
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(f"--url {endpoint!r} is not an http(s) URL like https://mcp.example.com/mcp", code=2)
    chosen: ClientName = client  # type: ignore[assignment]  # checked against CLIENTS above
    console.print(
        render_client_config(chosen, endpoint, key=key, key_file=key_file, name=name, embed_key=embed_key),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("client-config")(client_config)
