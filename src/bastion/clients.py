"""Configuration snippets for the MCP clients people use: Claude Code, Claude Desktop, VS Code, Cursor.

By default a snippet refers to the key (a file read at paste time, an environment variable, or an editor
prompt) instead of containing it, so the snippet itself can be shared or committed. `embed_key=True` puts the
key in the snippet, for clients that cannot refer to it and for the local demo.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["CLIENTS", "ClientName", "render_client_config"]

ClientName = Literal["claude-code", "claude-desktop", "vscode", "cursor"]
CLIENTS: tuple[ClientName, ...] = ("claude-code", "claude-desktop", "vscode", "cursor")
ENV_VAR = "BASTION_API_KEY"
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_KEY_WARNING = "# WARNING: this snippet contains your {credential}. Keep it out of version control and chats."


def _plain_http_beyond_this_machine(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") not in _LOOPBACK


def _json(data: object) -> str:
    return json.dumps(data, indent=2)


def render_client_config(
    client: ClientName,
    url: str,
    *,
    key: str | None,
    key_file: Path | None,
    name: str = "bastion",
    embed_key: bool = False,
    credential: str = "API key",
) -> str:
    """Text to paste (with one line saying where), for `client`; first a warning when it holds the key (or, as
    `bastion token` prints it, the access token: `credential` names which)."""
    if client == "claude-code":
        text = _claude_code(url, key, key_file, name, embed_key)
    elif client == "claude-desktop":
        text = _claude_desktop(url, key, key_file, name, embed_key)
    elif client == "vscode":
        text = _vscode(url, key, name, embed_key)
    else:
        text = _cursor(url, key, key_file, name, embed_key)
    return f"{_KEY_WARNING.format(credential=credential)}\n{text}" if embed_key and key else text


def _claude_code(url: str, key: str | None, key_file: Path | None, name: str, embed_key: bool) -> str:
    if embed_key and key:
        header = shlex.quote(f"Authorization: Bearer {key}")
    elif key_file is not None:
        header = f'"Authorization: Bearer $(cat {shlex.quote(str(key_file.resolve()))})"'
    else:
        header = f'"Authorization: Bearer ${ENV_VAR}"'
    project = {
        "mcpServers": {name: {"type": "http", "url": url, "headers": {"Authorization": f"Bearer ${{{ENV_VAR}}}"}}}
    }
    return "\n".join(
        [
            "# Claude Code: run once (adds the server for your user)",
            f"claude mcp add --transport http --scope user {shlex.quote(name)} {shlex.quote(url)} --header {header}",
            "",
            f"# or commit this as .mcp.json in a repository (Claude Code expands ${{{ENV_VAR}}} from the environment):",
            _json(project),
        ]
    )


def _claude_desktop(url: str, key: str | None, key_file: Path | None, name: str, embed_key: bool) -> str:
    # Claude Desktop's config file only starts local (stdio) servers; mcp-remote bridges stdio to Streamable HTTP.
    # The header value is passed through an env var because Windows mangles spaces inside args.
    value = f"Bearer {key}" if embed_key and key else f"Bearer <paste the key from {key_file or 'your key file'}>"
    args = ["-y", "mcp-remote", url, "--header", "Authorization:${BASTION_AUTH_HEADER}"]
    lines = [
        "# Claude Desktop: merge into claude_desktop_config.json (Settings > Developer > Edit Config), restart",
        "# (needs Node.js for npx; Team/Enterprise organisations can instead add the URL as a custom connector)",
    ]
    if _plain_http_beyond_this_machine(url):
        # mcp-remote refuses plain HTTP to any host but this one unless told otherwise.
        args.append("--allow-http")
        lines.append("# plain HTTP to another machine: the key crosses the network unencrypted; prefer an https URL")
    config = {"mcpServers": {name: {"command": "npx", "args": args, "env": {"BASTION_AUTH_HEADER": value}}}}
    return "\n".join([*lines, _json(config)])


def _vscode(url: str, key: str | None, name: str, embed_key: bool) -> str:
    if embed_key and key:
        config: dict[str, object] = {
            "servers": {name: {"type": "http", "url": url, "headers": {"Authorization": f"Bearer {key}"}}}
        }
    else:
        config = {
            "inputs": [
                {
                    "type": "promptString",
                    "id": f"{name}-api-key",
                    "description": "mcp-bastion API key",
                    "password": True,
                }
            ],
            "servers": {
                name: {"type": "http", "url": url, "headers": {"Authorization": f"Bearer ${{input:{name}-api-key}}"}}
            },
        }
    if embed_key and key:
        # A project's .vscode/mcp.json is usually committed: a snippet holding the key belongs in the user's file.
        where = ["# VS Code (Copilot agent mode): run 'MCP: Open User Configuration' and merge this"]
    else:
        where = ["# VS Code (Copilot agent mode): save as .vscode/mcp.json (or run 'MCP: Open User Configuration')"]
    return "\n".join([*where, _json(config)])


def _cursor(url: str, key: str | None, key_file: Path | None, name: str, embed_key: bool) -> str:
    value = f"Bearer {key}" if embed_key and key else f"Bearer ${{env:{ENV_VAR}}}"
    if embed_key and key:
        lines = ["# Cursor: save as ~/.cursor/mcp.json (your own file, not a project's .cursor/)"]
    else:
        lines = ["# Cursor: save as ~/.cursor/mcp.json (all projects) or .cursor/mcp.json (one project)"]
        source = f"$(cat {shlex.quote(str(key_file.resolve()))})" if key_file else "<your key>"
        lines.append(f'# and start Cursor with the key in its environment: export {ENV_VAR}="{source}"')
    lines.append(_json({"mcpServers": {name: {"url": url, "headers": {"Authorization": value}}}}))
    return "\n".join(lines)
