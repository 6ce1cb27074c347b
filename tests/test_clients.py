"""Client configuration snippets: valid JSON where they are JSON, shell lines that work when pasted, and the key
only where it was asked for."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bastion.clients import CLIENTS, ClientName, render_client_config

URL = "https://mcp.example.com/mcp"
KEY = "bst_0123456789ab_" + "S" * 40 + "x-_"
SECRET = KEY.split("_", 2)[2]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    # A directory with a space and a quote: the shell lines must quote the path, not just paste it.
    directory = tmp_path / "it's my keys"
    directory.mkdir()
    path = directory / "api-key"
    path.write_text(KEY + "\n")
    return path


def _json_part(text: str) -> Any:
    """The JSON document in a snippet: from the first line that starts with '{' to the end."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    return json.loads("\n".join(lines[start:]))


def _line(text: str, prefix: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(prefix))


def _bash(script: str, env: dict[str, str] | None = None) -> list[str]:
    """Run `script` with `claude` replaced by a function that prints its arguments one per line."""
    done = subprocess.run(
        ["bash", "-c", 'claude() { printf "%s\\n" "$@"; }\n' + script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=10,
    )
    return done.stdout.splitlines()


# -- never the key unless asked ------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_no_snippet_contains_the_key_unless_embedding_was_asked(client: ClientName, key_file: Path) -> None:
    text = render_client_config(client, URL, key=KEY, key_file=key_file, embed_key=False)
    assert SECRET not in text
    assert URL in text
    embedded = render_client_config(client, URL, key=KEY, key_file=key_file, embed_key=True)
    assert KEY in embedded


@pytest.mark.parametrize("client", CLIENTS)
def test_embedding_without_a_key_falls_back_to_a_reference(client: ClientName) -> None:
    text = render_client_config(client, URL, key=None, key_file=None, embed_key=True)
    assert "bst_" not in text
    assert URL in text


# -- Claude Code ---------------------------------------------------------------------------------------------


def test_claude_code_command_reads_the_key_file_when_run(key_file: Path) -> None:
    text = render_client_config("claude-code", URL, key=KEY, key_file=key_file)
    command = _line(text, "claude mcp add ")
    assert shlex.quote(str(key_file.resolve())) in command
    assert _bash(command) == [
        "mcp",
        "add",
        "--transport",
        "http",
        "--scope",
        "user",
        "bastion",
        URL,
        "--header",
        f"Authorization: Bearer {KEY}",
    ]


def test_claude_code_command_with_the_key_embedded(key_file: Path) -> None:
    text = render_client_config("claude-code", URL, key=KEY, key_file=key_file, embed_key=True)
    command = _line(text, "claude mcp add ")
    assert str(key_file) not in command
    assert _bash(command)[-1] == f"Authorization: Bearer {KEY}"


def test_claude_code_command_without_a_key_file_uses_the_environment() -> None:
    text = render_client_config("claude-code", URL, key=None, key_file=None)
    command = _line(text, "claude mcp add ")
    assert _bash(command, env={"BASTION_API_KEY": KEY})[-1] == f"Authorization: Bearer {KEY}"


def test_claude_code_command_quotes_an_unusual_name_and_url(key_file: Path) -> None:
    url = "https://mcp.example.com/mcp?tenant=acme&region=eu"
    text = render_client_config("claude-code", url, key=KEY, key_file=key_file, name="acme code")
    args = _bash(_line(text, "claude mcp add "))
    assert args[6:9] == ["acme code", url, "--header"]


def test_claude_code_project_file_is_json_with_an_env_reference(key_file: Path) -> None:
    config = _json_part(render_client_config("claude-code", URL, key=KEY, key_file=key_file, name="acme"))
    assert config == {
        "mcpServers": {"acme": {"type": "http", "url": URL, "headers": {"Authorization": "Bearer ${BASTION_API_KEY}"}}}
    }


# -- Claude Desktop ------------------------------------------------------------------------------------------


def test_claude_desktop_is_json_bridged_through_mcp_remote(key_file: Path) -> None:
    config = _json_part(render_client_config("claude-desktop", URL, key=KEY, key_file=key_file))
    server = config["mcpServers"]["bastion"]
    assert server["command"] == "npx"
    assert server["args"] == ["-y", "mcp-remote", URL, "--header", "Authorization:${BASTION_AUTH_HEADER}"]
    assert server["env"] == {"BASTION_AUTH_HEADER": f"Bearer <paste the key from {key_file}>"}


def test_claude_desktop_with_the_key_embedded(key_file: Path) -> None:
    config = _json_part(render_client_config("claude-desktop", URL, key=KEY, key_file=key_file, embed_key=True))
    assert config["mcpServers"]["bastion"]["env"] == {"BASTION_AUTH_HEADER": f"Bearer {KEY}"}


# -- VS Code -------------------------------------------------------------------------------------------------


def test_vscode_prompts_for_the_key_as_a_password(key_file: Path) -> None:
    config = _json_part(render_client_config("vscode", URL, key=KEY, key_file=key_file, name="acme"))
    assert config == {
        "inputs": [
            {"type": "promptString", "id": "acme-api-key", "description": "mcp-bastion API key", "password": True}
        ],
        "servers": {"acme": {"type": "http", "url": URL, "headers": {"Authorization": "Bearer ${input:acme-api-key}"}}},
    }


def test_vscode_with_the_key_embedded(key_file: Path) -> None:
    config = _json_part(render_client_config("vscode", URL, key=KEY, key_file=key_file, embed_key=True))
    assert config == {
        "servers": {"bastion": {"type": "http", "url": URL, "headers": {"Authorization": f"Bearer {KEY}"}}}
    }


# -- Cursor --------------------------------------------------------------------------------------------------


def test_cursor_reads_the_key_from_its_environment(key_file: Path) -> None:
    text = render_client_config("cursor", URL, key=KEY, key_file=key_file)
    config = _json_part(text)
    assert config == {
        "mcpServers": {"bastion": {"url": URL, "headers": {"Authorization": "Bearer ${env:BASTION_API_KEY}"}}}
    }
    export = _line(text, "# and start Cursor").split(": ", 1)[1]
    assert _bash(f'{export}\nprintf "%s\\n" "$BASTION_API_KEY"') == [KEY]


def test_cursor_without_a_key_file_shows_a_placeholder() -> None:
    text = render_client_config("cursor", URL, key=None, key_file=None)
    assert 'export BASTION_API_KEY="<your key>"' in text


def test_cursor_with_the_key_embedded(key_file: Path) -> None:
    text = render_client_config("cursor", URL, key=KEY, key_file=key_file, embed_key=True)
    assert "export" not in text
    assert _json_part(text)["mcpServers"]["bastion"]["headers"] == {"Authorization": f"Bearer {KEY}"}


# -- warnings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_a_snippet_holding_the_key_says_so_first_and_points_away_from_project_files(
    client: ClientName, key_file: Path
) -> None:
    embedded = render_client_config(client, URL, key=KEY, key_file=key_file, embed_key=True)
    assert embedded.splitlines()[0].startswith("# WARNING: this snippet contains your API key")
    if client in ("vscode", "cursor"):
        # a project's .vscode/mcp.json or .cursor/mcp.json is usually committed
        assert ".vscode/mcp.json" not in embedded
        assert ".cursor/mcp.json (one project)" not in embedded
    referred = render_client_config(client, URL, key=KEY, key_file=key_file, embed_key=False)
    assert "WARNING" not in referred


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/mcp", False),
        ("http://localhost:8000/mcp", False),
        ("http://[::1]:8000/mcp", False),
        (URL, False),
        ("http://bastion.internal:8000/mcp", True),
        ("http://10.0.0.5/mcp", True),
    ],
)
def test_mcp_remote_is_allowed_plain_http_only_beyond_this_machine(url: str, allowed: bool) -> None:
    text = render_client_config("claude-desktop", url, key=None, key_file=None)
    args = _json_part(text)["mcpServers"]["bastion"]["args"]
    assert ("--allow-http" in args) is allowed
    assert ("unencrypted" in text) is allowed
