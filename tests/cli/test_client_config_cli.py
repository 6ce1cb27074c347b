"""`bastion client-config` through the real root app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app

runner = CliRunner()
KEY = "bst_0123456789ab_" + "K" * 43


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BASTION_DATA_DIR", "BASTION_PUBLIC_URL", "BASTION_HOST", "BASTION_PORT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text(KEY + "\n")
    return path


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "client-config", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _json_part(text: str) -> Any:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    return json.loads("\n".join(lines[start:]))


def test_the_default_url_is_the_configured_resource(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "--client", "vscode")
    assert code == 0, err
    config = _json_part(out)
    assert config["servers"] == {
        "bastion": {
            "type": "http",
            "url": "http://127.0.0.1:8000/mcp",
            "headers": {"Authorization": "Bearer ${input:bastion-api-key}"},
        }
    }


def test_the_public_url_from_the_environment_is_used(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "--client", "cursor", env={"BASTION_PUBLIC_URL": "https://mcp.example.com/mcp/"})
    assert code == 0, err
    assert _json_part(out)["mcpServers"] == {
        "bastion": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${env:BASTION_API_KEY}"}}
    }


def test_a_long_url_is_printed_on_one_line_so_the_json_still_parses(tmp_path: Path, key_file: Path) -> None:
    url = "https://" + "a" * 150 + ".example.com/mcp"
    code, out, err = _run(tmp_path, "--client", "claude-desktop", "--url", url, "--key-file", str(key_file))
    assert code == 0, err
    assert _json_part(out)["mcpServers"]["bastion"]["args"][2] == url


@pytest.mark.parametrize("client", ["claude-code", "claude-desktop", "vscode", "cursor"])
def test_the_key_is_printed_only_with_embed_key(tmp_path: Path, key_file: Path, client: str) -> None:
    code, out, err = _run(tmp_path, "--client", client, "--key-file", str(key_file), "--name", "acme")
    assert code == 0, err
    assert KEY not in out
    assert "acme" in out
    code, out, err = _run(tmp_path, "--client", client, "--key-file", str(key_file), "--embed-key")
    assert code == 0, err
    assert f"Bearer {KEY}" in out


def test_claude_code_refers_to_the_key_file(tmp_path: Path, key_file: Path) -> None:
    code, out, err = _run(tmp_path, "--client", "claude-code", "--key-file", str(key_file))
    assert code == 0, err
    command = next(line for line in out.splitlines() if line.startswith("claude mcp add "))
    assert f"$(cat {key_file.resolve()})" in command


def test_an_unknown_client_exits_2_listing_the_choices(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "--client", "zed")
    assert code == 2
    assert out == ""
    assert "error: unknown client 'zed': choose one of claude-code, claude-desktop, vscode, cursor" in err


def test_a_missing_key_file_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    code, out, err = _run(tmp_path, "--client", "vscode", "--key-file", str(missing))
    assert code == 2
    assert out == ""
    assert f"error: cannot read key file {missing}: No such file or directory" in err


def test_a_key_file_that_is_a_directory_exits_2(tmp_path: Path) -> None:
    code, _, err = _run(tmp_path, "--client", "vscode", "--key-file", str(tmp_path))
    assert code == 2
    assert f"error: cannot read key file {tmp_path}: Is a directory" in err


def test_embed_key_without_a_key_file_exits_2(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "--client", "vscode", "--embed-key")
    assert code == 2
    assert out == ""
    assert "error: --embed-key needs --key-file" in err


def test_an_empty_key_file_cannot_be_embedded(tmp_path: Path) -> None:
    empty = tmp_path / "empty-key"
    empty.write_text("\n")
    code, out, err = _run(tmp_path, "--client", "vscode", "--key-file", str(empty), "--embed-key")
    assert code == 2
    assert out == ""
    assert f"error: key file {empty} is empty" in err


def test_a_file_that_is_not_a_key_is_never_embedded(tmp_path: Path) -> None:
    """`--key-file ~/.ssh/id_ed25519 --embed-key` printed the private key as a bearer token (found by a probe)."""
    private = tmp_path / "id_ed25519"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n")
    code, out, err = _run(tmp_path, "--client", "vscode", "--key-file", str(private), "--embed-key")
    assert code == 2
    assert "b3BlbnNzaC1rZXktdjEA" not in out + err
    assert "holds more than one line: it should hold the API key alone" in " ".join(err.split())


@pytest.mark.parametrize("url", ["not a url", "ftp://x/mcp", "http:///mcp"])
def test_a_url_that_is_not_http_is_refused(tmp_path: Path, key_file: Path, url: str) -> None:
    code, _, err = _run(tmp_path, "--client", "claude-code", "--key-file", str(key_file), "--url", url)
    assert code == 2
    assert "is not an http(s) URL" in " ".join(err.split())
